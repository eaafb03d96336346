/* The emulator's HTTP front end: libmicrohttpd with a thread per connection (poll(), so more than
 * FD_SETSIZE connections work) in front of one Lua state running sim/sgsim.
 *
 * Per request: the body is collected (capped at SIM_MAX_BODY; beyond that Lua answers 413 in the
 * provider's own error shape), Lua decides the answer and a delay under the state mutex, the
 * delay is slept with the mutex released (this is what lets hundreds of slow requests overlap),
 * Lua is told the request ended (for the log's t_end), and the response is queued, or the
 * connection dropped when a fault says so. Lua is never entered without the mutex. */
#include "lua_contract.h"
#include "sim_server.h"
#include "atomicfile.h"
#include "sim_tls.h"
#include "state.h"
#include "privatedir.h"
#include "regularfile.h"

#include <microhttpd.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SIM_MAX_BODY (1024 * 1024) /* bigger request bodies are answered 413 */
#define SIM_CONNECTION_LIMIT 4096
#define SIM_CONNECTION_TIMEOUT 120 /* seconds an idle keep-alive connection may hold a thread */

struct sg_sim {
  struct MHD_Daemon *daemon;
  int listen_fd;
  lua_State *L;
  int core_ref; /* registry reference to the sgsim core object */
  pthread_mutex_t mu;
  int quiet;
  int tls;
  struct sg_sim_tls certs; /* with tls: the CA and server certificate */
  char base_url[128];
};

/* One HTTP request in flight; created by the URI log callback so that the raw request target
 * (path and query exactly as sent, which the signature check needs) is kept. */
struct sim_req {
  char *uri;
  char *body;
  size_t len, cap;
  int oversized;
  int started;
};

/* What Lua answered, copied out so that the response is built without the lock. */
struct sim_answer {
  int status;
  char *body;
  size_t body_len;
  char **hdr; /* name, value, name, value ... */
  size_t nhdr;
  double delay;
  int drop;
  lua_Integer seq;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static double wall_clock(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int l_clock(lua_State *L) {
  lua_pushnumber(L, wall_clock());
  return 1;
}

static void sleep_seconds(double s) {
  if (!(s > 0)) return;
  if (s > 3600) s = 3600;
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
  }
}

static char *xstrndup(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = '\0';
  }
  return d;
}

static void answer_free(struct sim_answer *a) {
  free(a->body);
  for (size_t i = 0; i < a->nhdr * 2; i++) free(a->hdr[i]);
  free(a->hdr);
}

/* ---- Lua side, always called with sim->mu held ---- */

/* Calls core:METHOD(args...) with nargs arguments already pushed; leaves nres results. */
static int call_core(struct sg_sim *sim, const char *method, int nargs, int nres) {
  lua_State *L = sim->L;
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, sg_msghandler);
  lua_rawgeti(L, LUA_REGISTRYINDEX, sim->core_ref);
  lua_getfield(L, -1, method);
  lua_insert(L, -2); /* function, self */
  lua_insert(L, base + 1);
  lua_insert(L, base + 1);
  lua_insert(L, base + 1); /* msgh, function, self, args... */
  int rc = lua_pcall(L, nargs + 1, nres, base + 1);
  lua_remove(L, base + 1);
  return rc;
}

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value) {
  (void)kind;
  lua_State *L = cls;
  if (!key) return MHD_YES;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (const char *p = key; *p; p++)
    luaL_addchar(&b, (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p);
  luaL_pushresult(&b);
  lua_pushstring(L, value ? value : "");
  lua_settable(L, -3);
  return MHD_YES;
}

/* Runs core:request{...}. On a Lua failure, fills a plain 500. */
static void lua_request(struct sg_sim *sim, struct MHD_Connection *c, const char *method,
                        struct sim_req *r, struct sim_answer *a) {
  lua_State *L = sim->L;
  int top = lua_gettop(L);
  lua_createtable(L, 0, 5);
  lua_pushstring(L, method);
  lua_setfield(L, -2, "method");
  lua_pushstring(L, r->uri ? r->uri : "/");
  lua_setfield(L, -2, "uri");
  lua_pushlstring(L, r->body ? r->body : "", r->len);
  lua_setfield(L, -2, "body");
  lua_pushboolean(L, r->oversized);
  lua_setfield(L, -2, "oversized");
  lua_newtable(L);
  MHD_get_connection_values(c, MHD_HEADER_KIND, collect_header, L);
  lua_setfield(L, -2, "headers");
  if (call_core(sim, "request", 1, 6) != LUA_OK) {
    fprintf(stderr, "sgrun sim: internal error: %s\n", lua_tostring(L, -1));
    lua_settop(L, top);
    a->status = 500;
    a->body = xstrndup("{\"message\":\"internal emulator error\"}", 37);
    a->body_len = a->body ? 37 : 0;
    a->seq = 0;
    return;
  }
  a->status = (int)lua_tointeger(L, top + 1);
  size_t blen = 0;
  const char *body = lua_tolstring(L, top + 2, &blen);
  if (body) {
    a->body = xstrndup(body, blen);
    a->body_len = a->body ? blen : 0;
    if (!a->body) a->status = 503; /* out of memory: never an empty body passed off as the answer */
  }
  if (lua_istable(L, top + 3)) {
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, top + 3)) {
      n++;
      lua_pop(L, 1);
    }
    a->hdr = calloc(n * 2 + 1, sizeof *a->hdr);
    if (!a->hdr) a->status = 503;
    if (a->hdr) {
      lua_pushnil(L);
      while (lua_next(L, top + 3)) {
        if (lua_type(L, -2) == LUA_TSTRING && lua_isstring(L, -1) && a->nhdr < n) {
          a->hdr[a->nhdr * 2] = strdup(lua_tostring(L, -2));
          a->hdr[a->nhdr * 2 + 1] = strdup(lua_tostring(L, -1)); /* a copy: never converts the key */
          /* a header lost to a failed copy (checked where it is sent) would change the answer */
          if (!a->hdr[a->nhdr * 2] || !a->hdr[a->nhdr * 2 + 1]) a->status = 503;
          a->nhdr++;
        }
        lua_pop(L, 1);
      }
    }
  }
  a->delay = lua_tonumber(L, top + 4);
  a->drop = lua_toboolean(L, top + 5);
  a->seq = lua_tointeger(L, top + 6);
  lua_settop(L, top);
}

static void lua_finish(struct sg_sim *sim, lua_Integer seq) {
  lua_State *L = sim->L;
  int top = lua_gettop(L);
  lua_pushinteger(L, seq);
  if (call_core(sim, "finish", 1, 0) != LUA_OK)
    fprintf(stderr, "sgrun sim: internal error: %s\n", lua_tostring(L, -1));
  lua_settop(L, top);
}

/* ---- libmicrohttpd callbacks ---- */

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c) {
  (void)cls;
  (void)c;
  struct sim_req *r = calloc(1, sizeof *r);
  if (r) r->uri = strdup(uri ? uri : "/");
  return r;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  (void)cls;
  (void)c;
  (void)toe;
  struct sim_req *r = *con_cls;
  if (!r) return;
  free(r->uri);
  free(r->body);
  free(r);
  *con_cls = NULL;
}

static int append_body(struct sim_req *r, const char *data, size_t n) {
  if (r->oversized) return 1;
  if (r->len + n > SIM_MAX_BODY) {
    r->oversized = 1; /* keep reading (and discarding) so the client sees the 413 */
    return 1;
  }
  if (r->len + n > r->cap) {
    size_t ncap = r->cap ? r->cap : 4096;
    while (ncap < r->len + n) ncap *= 2;
    char *nb = realloc(r->body, ncap);
    if (!nb) return 0;
    r->body = nb;
    r->cap = ncap;
  }
  memcpy(r->body + r->len, data, n);
  r->len += n;
  return 1;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
  (void)url;
  (void)version;
  struct sg_sim *sim = cls;
  struct sim_req *r = *con_cls;
  if (!r || !r->uri) return MHD_NO; /* out of memory when the request began */
  if (!r->started) {
    r->started = 1;
    return MHD_YES;
  }
  if (*upload_data_size) {
    if (!append_body(r, upload_data, *upload_data_size)) return MHD_NO;
    *upload_data_size = 0;
    return MHD_YES;
  }

  struct sim_answer a = {0};
  double t0 = wall_clock();
  pthread_mutex_lock(&sim->mu);
  lua_request(sim, c, method, r, &a);
  pthread_mutex_unlock(&sim->mu);

  sleep_seconds(a.delay); /* outside the lock: concurrent requests sleep concurrently */

  if (a.seq) {
    pthread_mutex_lock(&sim->mu);
    lua_finish(sim, a.seq);
    pthread_mutex_unlock(&sim->mu);
  }
  if (!sim->quiet)
    fprintf(stderr, "sim: %s %s -> %s%d (%.0f ms)\n", method, r->uri, a.drop ? "dropped " : "",
            a.status, (wall_clock() - t0) * 1000);

  if (a.drop) {
    answer_free(&a);
    return MHD_NO; /* MHD closes the connection without a response */
  }
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(a.body_len, a.body ? a.body : (char *)"", MHD_RESPMEM_MUST_COPY);
  if (!resp) {
    answer_free(&a);
    return MHD_NO;
  }
  for (size_t i = 0; i < a.nhdr; i++)
    if (a.hdr[2 * i] && a.hdr[2 * i + 1])
      MHD_add_response_header(resp, a.hdr[2 * i], a.hdr[2 * i + 1]);
  enum MHD_Result ret = MHD_queue_response(c, (unsigned)(a.status ? a.status : 500), resp);
  MHD_destroy_response(resp);
  answer_free(&a);
  return ret;
}

/* ---- start / stop ---- */

static int open_listener(const char *host, int port, char *err, size_t errlen, int *bound_port,
                         int *is_v6) {
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  char portstr[16];
  snprintf(portstr, sizeof portstr, "%d", port);
  int rc = getaddrinfo(host, portstr, &hints, &res);
  if (rc != 0) {
    set_err(err, errlen, "cannot resolve --host %s: %s", host, gai_strerror(rc));
    return -1;
  }
  int fd = -1, saved = 0;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      saved = errno;
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SIM_CONNECTION_LIMIT) == 0) {
      *is_v6 = ai->ai_family == AF_INET6;
      break;
    }
    saved = errno;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) {
    set_err(err, errlen, "cannot listen on %s:%d: %s", host, port, strerror(saved));
    return -1;
  }
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
    set_err(err, errlen, "getsockname: %s", strerror(errno));
    close(fd);
    return -1;
  }
  *bound_port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                         : ntohs(((struct sockaddr_in *)&ss)->sin_port);
  return fd;
}

/* Builds the core: require "sgsim", sgsim.new(opts). Returns 0 with a message in err on failure. */
static int create_core(struct sg_sim *sim, const struct sg_sim_options *o, char *err, size_t errlen) {
  lua_State *L = sim->L;
  lua_pushcfunction(L, sg_msghandler);
  int msgh = lua_gettop(L);
  lua_getglobal(L, "require");
  lua_pushstring(L, SG_LUA_SIM);
  if (lua_pcall(L, 1, 1, msgh) != LUA_OK) {
    set_err(err, errlen, "cannot load the emulator: %s", lua_tostring(L, -1));
    lua_settop(L, 0);
    return 0;
  }
  lua_getfield(L, -1, "new");
  lua_createtable(L, 0, 8);
  lua_pushnumber(L, o->latency_ms);
  lua_setfield(L, -2, "latency_ms");
  lua_pushnumber(L, o->jitter_ms);
  lua_setfield(L, -2, "jitter_ms");
  if (o->task_delay_ms >= 0) {
    lua_pushnumber(L, o->task_delay_ms);
    lua_setfield(L, -2, "task_duration_ms");
  }
  if (o->faults) {
    lua_pushstring(L, o->faults);
    lua_setfield(L, -2, "faults");
  }
  if (o->has_seed) {
    lua_pushinteger(L, (lua_Integer)o->seed);
    lua_setfield(L, -2, "seed");
  }
  if (o->accounts > 0) {
    lua_pushinteger(L, o->accounts);
    lua_setfield(L, -2, "accounts");
  }
  if (o->account_groups > 0) {
    lua_pushinteger(L, o->account_groups);
    lua_setfield(L, -2, "account_groups");
  }
  lua_pushcfunction(L, l_clock);
  lua_setfield(L, -2, "clock");
  if (lua_pcall(L, 1, 2, msgh) != LUA_OK || lua_isnil(L, -2)) {
    set_err(err, errlen, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "cannot start the emulator");
    lua_settop(L, 0);
    return 0;
  }
  lua_pop(L, 1);
  sim->core_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_settop(L, 0);

  if (o->state_file) {
    /* written at exit, through a temporary file beside it: a directory that cannot take it is
     * said now, not after the session */
    char dir[4096];
    sg_parent_dir(o->state_file, dir, sizeof dir);
    if (access(dir, W_OK | X_OK) != 0) {
      set_err(err, errlen, "invalid --state %s: it would be written at exit, but its directory %s cannot be "
              "written (%s); choose a file in a directory of yours", o->state_file, dir, strerror(errno));
      return 0;
    }
  }
  struct stat st;
  int fd = o->state_file ? sg_open_regular(o->state_file, &st) : -1;
  if (fd == SG_NOT_REGULAR) {
    set_err(err, errlen, "invalid --state %s: it is %s; --state takes a regular file (one that does "
            "not exist yet is written at exit)", o->state_file, sg_file_kind(st.st_mode));
    return 0;
  }
  if (fd < 0 && o->state_file && errno != ENOENT) {
    set_err(err, errlen, "invalid --state %s: cannot read it: %s", o->state_file, strerror(errno));
    return 0;
  }
  if (fd >= 0) {
    /* outside any protected call a memory error ends the process, so fd needs no Lua owner here */
    int read_err = sg_push_file(L, fd);
    close(fd);
    if (read_err) {
      set_err(err, errlen, "invalid --state %s: cannot read it: %s", o->state_file, strerror(read_err));
      return 0;
    }
    int rc = call_core(sim, "load", 1, 2);
    if (rc != LUA_OK || !lua_toboolean(L, -2)) {
      /* a refusal of the file is the user's to fix; the emulator failing is not */
      set_err(err, errlen, "%s --state %s: %s", rc == LUA_OK ? "invalid" : "could not load", o->state_file,
              lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
      lua_settop(L, 0);
      return 0;
    }
    lua_settop(L, 0);
  }
  return 1;
}

struct sg_sim *sg_sim_start(const struct sg_sim_options *opts, char *err, size_t errlen) {
  struct sg_sim_options defaults = {.task_delay_ms = -1};
  const struct sg_sim_options *o = opts ? opts : &defaults;
  struct sg_sim *sim = calloc(1, sizeof *sim);
  if (!sim) {
    set_err(err, errlen, "out of memory");
    return NULL;
  }
  sim->listen_fd = -1;
  sim->core_ref = LUA_NOREF;
  sim->quiet = o->quiet;
  pthread_mutex_init(&sim->mu, NULL);
  sim->L = sg_state_new();
  if (!sim->L) {
    set_err(err, errlen, "out of memory");
    sg_sim_stop(sim);
    return NULL;
  }
  if (!create_core(sim, o, err, errlen)) {
    sg_sim_stop(sim);
    return NULL;
  }

  const char *host = o->host && *o->host ? o->host : "127.0.0.1";
  int port = 0, v6 = 0;
  sim->listen_fd = open_listener(host, o->port, err, errlen, &port, &v6);
  if (sim->listen_fd < 0) {
    sg_sim_stop(sim);
    return NULL;
  }
  /* Clients are told a loopback address when listening on every interface. */
  const char *shown = host;
  if (strcmp(host, "0.0.0.0") == 0) shown = "127.0.0.1";
  else if (strcmp(host, "::") == 0) shown = "::1";
  const char *scheme = o->tls ? "https" : "http";
  if (strchr(shown, ':'))
    snprintf(sim->base_url, sizeof sim->base_url, "%s://[%s]:%d", scheme, shown, port);
  else
    snprintf(sim->base_url, sizeof sim->base_url, "%s://%s:%d", scheme, shown, port);

  unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
  if (v6) flags |= MHD_USE_IPv6;
  if (o->tls) {
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
      set_err(err, errlen, "--tls: this libmicrohttpd was built without TLS support; install one built "
              "with GnuTLS (Debian's libmicrohttpd12 is)");
      sg_sim_stop(sim);
      return NULL;
    }
    if (sg_sim_tls_prepare(&sim->certs, o->tls_dir, host, err, errlen) != 0) {
      sg_sim_stop(sim);
      return NULL;
    }
    sim->tls = 1;
    flags |= MHD_USE_TLS;
  }
  /* MHD_OPTION_END ends the list early without TLS, so the key options are only read with it */
  sim->daemon = MHD_start_daemon(
      flags, 0, NULL, NULL, on_request, sim,
      MHD_OPTION_LISTEN_SOCKET, (MHD_socket)sim->listen_fd,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)SIM_CONNECTION_LIMIT,
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)0,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)SIM_CONNECTION_TIMEOUT,
      MHD_OPTION_THREAD_STACK_SIZE, (size_t)(1024 * 1024),
      MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
      sim->tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, sim->certs.key_pem,
      MHD_OPTION_HTTPS_MEM_CERT, sim->certs.cert_pem,
      MHD_OPTION_END);
  if (!sim->daemon) {
    set_err(err, errlen, "cannot start the HTTP server on %s", sim->base_url);
    sg_sim_stop(sim);
    return NULL;
  }
  return sim;
}

const char *sg_sim_base_url(const struct sg_sim *sim) { return sim->base_url; }

const char *sg_sim_ca_file(const struct sg_sim *sim) { return sim->tls ? sim->certs.ca_file : NULL; }

void sg_sim_stop(struct sg_sim *sim) {
  if (!sim) return;
  if (sim->daemon) MHD_stop_daemon(sim->daemon); /* joins every connection thread */
  if (sim->listen_fd >= 0) close(sim->listen_fd);
  if (sim->L) lua_close(sim->L);
  sg_sim_tls_release(&sim->certs);
  pthread_mutex_destroy(&sim->mu);
  free(sim);
}

/* Pushes core:env(base_url) (a table of variable -> value) or returns 0. Lock held. */
static int push_env(struct sg_sim *sim) {
  lua_pushstring(sim->L, sim->base_url);
  if (call_core(sim, "env", 1, 1) != LUA_OK || !lua_istable(sim->L, -1)) {
    fprintf(stderr, "sgrun sim: %s\n", lua_tostring(sim->L, -1) ? lua_tostring(sim->L, -1) : "env failed");
    lua_pop(sim->L, 1);
    return 0;
  }
  if (sim->tls) {
    lua_pushstring(sim->L, sim->certs.ca_file);
    lua_setfield(sim->L, -2, "SGRUN_CA_FILE");
  }
  return 1;
}

void sg_sim_export_env(struct sg_sim *sim) {
  pthread_mutex_lock(&sim->mu);
  lua_State *L = sim->L;
  if (push_env(sim)) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING)
        setenv(lua_tostring(L, -2), lua_tostring(L, -1), 1);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  pthread_mutex_unlock(&sim->mu);
}

/* The env, ready and state files often go to a shared directory such as /tmp: created
 * exclusively, never through a planted symlink (see atomicfile.h). */
static int write_atomically(const char *path, const char *data, size_t len) {
  char err[512];
  if (sg_write_atomic(path, data, len, err, sizeof err) == 0) return 0;
  fprintf(stderr, "sgrun sim: %s\n", err);
  return -1;
}

int sg_sim_write_env_file(struct sg_sim *sim, const char *path) {
  pthread_mutex_lock(&sim->mu);
  lua_State *L = sim->L;
  int rc = -1;
  if (push_env(sim)) {
    /* sorted lines, so the file is stable */
    lua_getglobal(L, "table");
    luaL_Buffer b;
    lua_newtable(L);
    int keys = lua_gettop(L);
    lua_Integer nk = 0;
    lua_pushnil(L);
    while (lua_next(L, keys - 2)) {
      lua_pop(L, 1);
      lua_pushvalue(L, -1);
      lua_rawseti(L, keys, ++nk);
    }
    lua_getfield(L, keys - 1, "sort");
    lua_pushvalue(L, keys);
    lua_call(L, 1, 0);
    luaL_buffinit(L, &b);
    for (lua_Integer i = 1; i <= nk; i++) {
      lua_rawgeti(L, keys, i);
      const char *k = lua_tostring(L, -1);
      lua_getfield(L, keys - 2, k);
      lua_pushfstring(L, "%s=%s\n", k, lua_tostring(L, -1));
      lua_remove(L, -2);
      lua_remove(L, -2);
      luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    rc = write_atomically(path, s, len);
    lua_settop(L, keys - 3);
  }
  pthread_mutex_unlock(&sim->mu);
  return rc;
}

char *sg_sim_banner(struct sg_sim *sim) {
  pthread_mutex_lock(&sim->mu);
  char *out = NULL;
  lua_pushstring(sim->L, sim->base_url);
  if (call_core(sim, "banner", 1, 1) == LUA_OK && lua_isstring(sim->L, -1))
    out = strdup(lua_tostring(sim->L, -1));
  lua_pop(sim->L, 1);
  pthread_mutex_unlock(&sim->mu);
  return out;
}

int sg_sim_save_state(struct sg_sim *sim, const char *path, char *err, size_t errlen) {
  pthread_mutex_lock(&sim->mu);
  int rc = -1;
  if (call_core(sim, "dump", 0, 1) == LUA_OK && lua_isstring(sim->L, -1)) {
    size_t len;
    const char *s = lua_tolstring(sim->L, -1, &len);
    rc = sg_write_atomic(path, s, len, err, errlen);
  } else {
    set_err(err, errlen, "cannot dump the state: %s", lua_tostring(sim->L, -1));
  }
  lua_pop(sim->L, 1);
  pthread_mutex_unlock(&sim->mu);
  return rc;
}

/* Creates path exclusively with mode and writes data; 0 on success (errno set otherwise). */
static int write_new_file(const char *path, const char *data, size_t len, mode_t mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return -1;
  int ok = sg_write_all(fd, data, len) == 0 && fsync(fd) == 0;
  int saved = errno;
  if (close(fd) != 0 && ok) {
    ok = 0;
    saved = errno;
  }
  if (ok) return 0;
  unlink(path);
  errno = saved;
  return -1;
}

int sg_sim_write_fleet_file(struct sg_sim *sim, const char *path, char *err, size_t errlen) {
  size_t n = strlen(path);
  size_t stem = n > 4 && strcmp(path + n - 4, ".lua") == 0 ? n - 4 : n;
  char *profiles = malloc(stem + sizeof ".profiles");
  if (!profiles) {
    set_err(err, errlen, "out of memory");
    return -1;
  }
  memcpy(profiles, path, stem);
  strcpy(profiles + stem, ".profiles");
  char *abs = NULL;
  int rc = -1;
  pthread_mutex_lock(&sim->mu);
  lua_State *L = sim->L;
  lua_pushstring(L, sim->base_url);
  lua_pushstring(L, profiles);
  if (call_core(sim, "fleet_files", 2, 2) != LUA_OK) {
    set_err(err, errlen, "cannot list the fleet accounts: %s", lua_tostring(L, -1));
    lua_settop(L, 0);
  } else {
    size_t ilen, plen;
    const char *inv = lua_tolstring(L, -2, &ilen);
    const char *prof = lua_tolstring(L, -1, &plen);
    if (write_new_file(profiles, prof, plen, 0600) != 0) {
      set_err(err, errlen, "cannot create %s: %s%s", profiles, strerror(errno),
              errno == EEXIST ? " (it is never overwritten: remove it or pick another --fleet-file)" : "");
    } else if (write_new_file(path, inv, ilen, 0644) != 0) {
      set_err(err, errlen, "cannot create --fleet-file %s: %s%s", path, strerror(errno),
              errno == EEXIST ? " (it is never overwritten: remove it or pick another name)" : "");
      unlink(profiles);
    } else {
      rc = 0;
      /* SGRUN_PROFILES in --env-file is absolute, so the file works from any directory */
      abs = realpath(profiles, NULL);
      if (abs) {
        lua_settop(L, 0);
        lua_pushstring(L, sim->base_url);
        lua_pushstring(L, abs);
        call_core(sim, "fleet_files", 2, 2);
      }
    }
    lua_settop(L, 0);
  }
  pthread_mutex_unlock(&sim->mu);
  free(abs);
  free(profiles);
  return rc;
}

/* ---- `sgrun sim` ---- */

static const char usage[] =
    "usage: sgrun sim [options]\n"
    "\n"
    "An offline emulator of the Exoscale, Gcore, Genesis Cloud, Barrack and HostUp firewall APIs,\n"
    "one HTTP server with each provider under its own prefix (the start-up banner lists them).\n"
    "Point SGRUN_<PROVIDER>_URL at BASE+prefix (see --env-file) and use the demo credentials printed\n"
    "at start. Runs until SIGINT or SIGTERM.\n"
    "\n"
    "options:\n"
    "  --host H          address to listen on (default 127.0.0.1)\n"
    "  --port N          port to listen on; 0 picks a free one (default 8080)\n"
    "  --latency MS      fixed delay added to every provider response (default 0)\n"
    "  --jitter MS       plus a uniformly random delay in [0, MS) (default 0)\n"
    "  --task-delay MS   how long async work takes: Exoscale operations stay pending, Gcore tasks\n"
    "                    go NEW -> RUNNING -> FINISHED, Genesis groups stay creating, Barrack rules\n"
    "                    stay pending, for MS milliseconds (default 2000)\n"
    "  --faults SPEC     injected faults, comma-separated NAME=VALUE (default none):\n"
    "                      5xx=P          answer a fraction P (0..1) of requests with a 5xx\n"
    "                      drop=P         drop the connection for a fraction P of requests\n"
    "                                     (half of them after the request took effect)\n"
    "                      task_error=P   a fraction P of async tasks end in ERROR/failure\n"
    "                      rate_limit=N   at most N requests per second per provider; beyond\n"
    "                                     that 429 with Retry-After\n"
    "                      429=P          answer a fraction P of requests 429 (throttle_only:\n"
    "                                     \"gcore\" limits it to those providers)\n"
    "                    e.g. --faults 5xx=0.05,drop=0.01,task_error=0.1,rate_limit=50\n"
    "  --accounts N      host N fleet accounts per provider besides the demo one, each with its\n"
    "                    own credentials and groups (knob: accounts; SGRUN_SIM_ACCOUNTS for --sim)\n"
    "  --account-groups G  groups per fleet account, copies of the demo group (default 1)\n"
    "  --fleet-file F    write an inventory of the fleet accounts to F and their profile file\n"
    "                    beside it (F.profiles without .lua, mode 0600), for scripts/fleet.lua;\n"
    "                    neither is ever overwritten; --env-file then sets SGRUN_PROFILES\n"
    "  --seed N          seed for every random choice (ids, jitter, faults): runs repeat\n"
    "  --state FILE      load the emulator state from FILE at start when it exists, and save it\n"
    "                    back there on exit\n"
    "  --ready-file F    once listening, write the base URL (http://HOST:PORT) to F\n"
    "  --env-file F      once listening, write KEY=VALUE lines (SGRUN_*_URL, demo credentials,\n"
    "                    SGRUN_CA_FILE with --tls) to F\n"
    "  --tls             serve HTTPS with a certificate signed by a CA of the emulator's own, kept\n"
    "                    in a directory printed at start; the --env-file names the CA as\n"
    "                    SGRUN_CA_FILE, which every sgrun connection trusts\n"
    "  --tls-dir DIR     with --tls: keep the CA in DIR (made when absent, reused when present, so\n"
    "                    clients can trust it across restarts); default a temporary directory\n"
    "                    removed on exit\n"
    "  --quiet           no per-request log lines on stderr\n"
    "  --help            this text\n"
    "\n"
    "Run-time control (no auth), under BASE/_sim/:\n"
    "  GET  /_sim/knobs            the knobs as JSON; PUT /_sim/knobs changes any of them:\n"
    "                              {latency_ms, jitter_ms, task_duration_ms, error_rate, drop_rate,\n"
    "                               task_error_rate, task_error_only, hold_tasks, rate_limit, seed,\n"
    "                               faults}\n"
    "                              task_error_only: \"gcore,hostup\" limits task errors to those;\n"
    "                              hold_tasks: true holds every provider task until set false\n"
    "  GET  /_sim/state            dump the state of every provider; POST /_sim/load loads a dump\n"
    "  POST /_sim/reset            back to the seeded demo state\n"
    "  GET  /_sim/log[?since=SEQ]  the request log (seq, provider, method, path, query, status,\n"
    "                              t_start, t_end); DELETE /_sim/log clears it\n"
    "\n"
    "A playbook against it:\n"
    "  sgrun sim --port 0 --ready-file /tmp/sim.url --env-file /tmp/sim.env &\n"
    "  set -a; . /tmp/sim.env; set +a; sgrun playbook.lua\n"
    "or simply: sgrun --sim playbook.lua\n";

static int usage_error(const char *fmt, const char *arg) {
  fprintf(stderr, "sgrun sim: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n(see sgrun sim --help)\n");
  return 2;
}

static int parse_number(const char *s, double lo, double hi, double *out) {
  if (!s || !*s) return 0;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (*end || errno || !(v >= lo && v <= hi)) return 0;
  *out = v;
  return 1;
}

int sg_sim_main(int argc, char **argv) {
  struct sg_sim_options o = {.port = 8080, .task_delay_ms = -1};
  const char *ready_file = NULL, *env_file = NULL, *fleet_file = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *val = NULL;
    char name[32];
    /* --name=value and --name value */
    const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
    if (eq && (size_t)(eq - a) < sizeof name) {
      memcpy(name, a, (size_t)(eq - a));
      name[eq - a] = '\0';
      val = eq + 1;
      a = name;
    }
    int takes = strcmp(a, "--host") == 0 || strcmp(a, "--port") == 0 || strcmp(a, "--latency") == 0 ||
                strcmp(a, "--jitter") == 0 || strcmp(a, "--task-delay") == 0 ||
                strcmp(a, "--faults") == 0 || strcmp(a, "--seed") == 0 || strcmp(a, "--state") == 0 ||
                strcmp(a, "--ready-file") == 0 || strcmp(a, "--env-file") == 0 ||
                strcmp(a, "--accounts") == 0 || strcmp(a, "--account-groups") == 0 ||
                strcmp(a, "--fleet-file") == 0 || strcmp(a, "--tls-dir") == 0;
    if (takes && !val) {
      if (i + 1 >= argc) return usage_error("%s needs a value", a);
      val = argv[++i];
    } else if (!takes && val) {
      return usage_error("%s takes no value", a);
    }
    double d;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(usage, stdout);
      return 0;
    } else if (strcmp(a, "--quiet") == 0) {
      o.quiet = 1;
    } else if (strcmp(a, "--tls") == 0) {
      o.tls = 1;
    } else if (strcmp(a, "--tls-dir") == 0) {
      o.tls_dir = val;
    } else if (strcmp(a, "--host") == 0) {
      o.host = val;
    } else if (strcmp(a, "--port") == 0) {
      if (!parse_number(val, 0, 65535, &d) || d != (int)d) return usage_error("--port: not a port number: %s", val);
      o.port = (int)d;
    } else if (strcmp(a, "--latency") == 0) {
      if (!parse_number(val, 0, 3600000, &d)) return usage_error("--latency: not a number of milliseconds: %s", val);
      o.latency_ms = d;
    } else if (strcmp(a, "--jitter") == 0) {
      if (!parse_number(val, 0, 3600000, &d)) return usage_error("--jitter: not a number of milliseconds: %s", val);
      o.jitter_ms = d;
    } else if (strcmp(a, "--task-delay") == 0) {
      if (!parse_number(val, 0, 86400000, &d)) return usage_error("--task-delay: not a number of milliseconds: %s", val);
      o.task_delay_ms = d;
    } else if (strcmp(a, "--seed") == 0) {
      char *end;
      errno = 0;
      long long s = strtoll(val, &end, 10);
      if (!*val || *end || errno) return usage_error("--seed: not an integer: %s", val);
      o.seed = s;
      o.has_seed = 1;
    } else if (strcmp(a, "--faults") == 0) {
      o.faults = val;
    } else if (strcmp(a, "--state") == 0) {
      o.state_file = val;
    } else if (strcmp(a, "--ready-file") == 0) {
      ready_file = val;
    } else if (strcmp(a, "--env-file") == 0) {
      env_file = val;
    } else if (strcmp(a, "--accounts") == 0) {
      if (!parse_number(val, 0, 100000, &d) || d != (int)d) return usage_error("--accounts: not a number of accounts (0..100000): %s", val);
      o.accounts = (int)d;
    } else if (strcmp(a, "--account-groups") == 0) {
      if (!parse_number(val, 1, 50, &d) || d != (int)d) return usage_error("--account-groups: not a number of groups (1..50): %s", val);
      o.account_groups = (int)d;
    } else if (strcmp(a, "--fleet-file") == 0) {
      fleet_file = val;
    } else {
      return usage_error("unknown option: %s", argv[i]);
    }
  }
  if (o.tls_dir && !o.tls) return usage_error("%s chooses where the CA of --tls lives: add --tls", "--tls-dir");

  /* SIGINT/SIGTERM are taken with sigwait; blocked before any thread starts so none gets them. */
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, &old);
  signal(SIGPIPE, SIG_IGN);

  char err[512] = "";
  struct sg_sim *sim = sg_sim_start(&o, err, sizeof err);
  if (!sim) {
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    fprintf(stderr, "sgrun sim: %s\n", err);
    return strncmp(err, "invalid --", 10) == 0 ? 2 : 1; /* the user's option, not the machine */
  }
  if (fleet_file && !o.accounts) {
    sg_sim_stop(sim);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return usage_error("--fleet-file %s needs --accounts N (how many accounts per provider)", fleet_file);
  }
  if (fleet_file && sg_sim_write_fleet_file(sim, fleet_file, err, sizeof err) != 0) {
    fprintf(stderr, "sgrun sim: %s\n", err);
    sg_sim_stop(sim);
    return 1;
  }
  if (env_file && sg_sim_write_env_file(sim, env_file) != 0) {
    fprintf(stderr, "sgrun sim: cannot write --env-file %s\n", env_file);
    sg_sim_stop(sim);
    return 1;
  }
  if (ready_file) {
    char line[160];
    int n = snprintf(line, sizeof line, "%s\n", sim->base_url);
    if (write_atomically(ready_file, line, (size_t)n) != 0) {
      fprintf(stderr, "sgrun sim: cannot write --ready-file %s\n", ready_file);
      sg_sim_stop(sim);
      return 1;
    }
  }
  char *banner = sg_sim_banner(sim);
  fputs(banner ? banner : sim->base_url, stdout);
  fputc('\n', stdout);
  if (sim->tls)
    printf("TLS: certificates in %s; clients trust the CA %s (SGRUN_CA_FILE)\n", sim->certs.dir,
           sim->certs.ca_file);
  fflush(stdout);
  free(banner);

  int sig = 0;
  sigwait(&set, &sig);
  int status = 0;
  if (o.state_file && sg_sim_save_state(sim, o.state_file, err, sizeof err) != 0) {
    fprintf(stderr, "sgrun sim: %s\n", err);
    status = 1;
  }
  sg_sim_stop(sim);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return status;
}
