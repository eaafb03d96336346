/* _sg.http: request{method, url, headers, body, timeout, max_size, ca_file, ca_path, resolve} over
 * the runtime's
 * curl multiplexer. The calling task waits; an HTTP error status is a response, transport
 * failures return nil, message, code with a stable code. */
#include <lauxlib.h>
#include <lua.h>

#include <curl/curl.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "curlmux.h"
#include "scheduler.h"

#define REQUEST_MT "sg.http.request"
#define DEFAULT_MAX_SIZE (16L * 1024 * 1024)
#define POOL_MAX 256
#define MAX_TIMEOUT 86400.0   /* seconds: a day is longer than any call should wait */
#define MAX_BODY_LIMIT 1e15   /* bytes: any max_size up to this is exactly representable */
#define HEADER_LIMIT (256 * 1024) /* bytes of response headers kept, all blocks together */

struct buffer {
  char *data;
  size_t len, cap;
};

struct request {
  CURL *easy;
  struct curl_slist *headers;
  struct curl_slist *resolve;
  struct buffer body, head;
  size_t max_size;
  int too_large;
  int headers_too_large;
  int done;
  CURLcode result;
  sg_task *task;
  char errbuf[CURL_ERROR_SIZE];
};

/* Idle easy handles: reusing them keeps their DNS and TLS session caches warm. */
static CURL *pool[POOL_MAX];
static int pooled;
static int dry_run;
static int in_flight; /* transfers handed to curl and not yet released */

static CURL *take_easy(void) {
  if (pooled) return pool[--pooled];
  return curl_easy_init();
}

static void give_back_easy(CURL *easy) {
  if (pooled < POOL_MAX) {
    curl_easy_reset(easy);
    pool[pooled++] = easy;
  } else {
    curl_easy_cleanup(easy);
  }
}

static int append(struct buffer *b, const char *data, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + n + 1) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) return -1;
    b->data = p;
    b->cap = cap;
  }
  memcpy(b->data + b->len, data, n);
  b->len += n;
  b->data[b->len] = 0;
  return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud) {
  struct request *r = ud;
  size_t n = size * nmemb;
  if (r->body.len + n > r->max_size) {
    r->too_large = 1;
    return 0; /* makes curl stop with CURLE_WRITE_ERROR */
  }
  return append(&r->body, data, n) == 0 ? n : 0;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud) {
  struct request *r = ud;
  size_t n = size * nmemb;
  /* a new status line (after 1xx or a redirect) starts a new header block */
  if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) r->head.len = 0;
  if (r->head.len + n > HEADER_LIMIT) {
    r->headers_too_large = 1;
    return 0; /* stops the transfer */
  }
  return append(&r->head, data, n) == 0 ? n : 0;
}

static void release(struct request *r) {
  if (r->task) {
    in_flight--;
    r->task = NULL;
  }
  if (r->easy) {
    sg_curlmux_remove(r->easy);
    give_back_easy(r->easy);
    r->easy = NULL;
  }
  curl_slist_free_all(r->headers);
  r->headers = NULL;
  curl_slist_free_all(r->resolve);
  r->resolve = NULL;
  free(r->body.data);
  free(r->head.data);
  memset(&r->body, 0, sizeof r->body);
  memset(&r->head, 0, sizeof r->head);
}

static int request_gc(lua_State *L) {
  release(luaL_checkudata(L, 1, REQUEST_MT));
  return 0;
}

static void on_done(void *ud, CURLcode result) {
  struct request *r = ud;
  r->done = 1;
  r->result = result;
  /* a Content-Length over the cap stops the transfer before the body arrives */
  if (result == CURLE_FILESIZE_EXCEEDED) r->too_large = 1;
  sg_sched_wake(r->task);
}

static void on_cancel(void *ud) { release(ud); }

/* libcurl refuses a header line over its own limit (100 KiB) with CURLE_OUT_OF_MEMORY, its only
 * common cause here; the message names both. */
static int header_refused(const struct request *r) {
  return r->headers_too_large || r->result == CURLE_OUT_OF_MEMORY;
}

static const char *failure_code(const struct request *r) {
  if (r->too_large || header_refused(r)) return "too_large";
  switch (r->result) {
  case CURLE_OPERATION_TIMEDOUT: return "timeout";
  case CURLE_COULDNT_CONNECT: return "connect";
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY: return "resolve";
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_ISSUER_ERROR: return "tls";
  case CURLE_GOT_NOTHING:
  case CURLE_RECV_ERROR:
  case CURLE_SEND_ERROR:
  case CURLE_PARTIAL_FILE: return "closed";
  case CURLE_URL_MALFORMAT:
  case CURLE_UNSUPPORTED_PROTOCOL: return "url";
  default: return "curl";
  }
}

static void push_headers(lua_State *L, const struct buffer *head) {
  lua_newtable(L);
  if (!head->data) return;
  const char *p = head->data, *end = head->data + head->len;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) eol = end;
    const char *colon = memchr(p, ':', (size_t)(eol - p));
    if (colon && memcmp(p, "HTTP/", 5) != 0) {
      luaL_Buffer name;
      luaL_buffinit(L, &name);
      for (const char *c = p; c < colon; c++) luaL_addchar(&name, (char)tolower((unsigned char)*c));
      luaL_pushresult(&name);
      const char *v = colon + 1, *vend = eol;
      while (v < vend && (*v == ' ' || *v == '\t')) v++;
      while (vend > v && (vend[-1] == '\r' || vend[-1] == ' ' || vend[-1] == '\t')) vend--;
      lua_pushvalue(L, -1);
      if (lua_rawget(L, -3) == LUA_TSTRING) { /* repeated header: join as RFC 9110 allows */
        lua_pushliteral(L, ", ");
        lua_pushlstring(L, v, (size_t)(vend - v));
        lua_concat(L, 3);
      } else {
        lua_pop(L, 1);
        lua_pushlstring(L, v, (size_t)(vend - v));
      }
      lua_rawset(L, -3);
    }
    p = eol + 1;
  }
}

static int request_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  struct request *r = (struct request *)ctx;
  if (r->result != CURLE_OK || r->too_large || r->headers_too_large) {
    luaL_pushfail(L);
    if (r->too_large)
      lua_pushfstring(L, "response body larger than the %I byte limit (max_size)", (lua_Integer)r->max_size);
    else if (header_refused(r))
      lua_pushfstring(L, "response headers larger than the limit (%d bytes in all, 100 KiB a line)%s: "
                      "the server sent more than any API answer needs", HEADER_LIMIT,
                      r->headers_too_large ? "" : ", or memory ran out");
    else
      lua_pushfstring(L, "%s%s%s", curl_easy_strerror(r->result), r->errbuf[0] ? ": " : "",
                      r->errbuf);
    lua_pushstring(L, failure_code(r));
    release(r);
    return 3;
  }
  long code = 0;
  curl_off_t micros = 0;
  curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_getinfo(r->easy, CURLINFO_TOTAL_TIME_T, &micros);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, code);
  lua_setfield(L, -2, "status");
  push_headers(L, &r->head);
  lua_setfield(L, -2, "headers");
  lua_pushlstring(L, r->body.data ? r->body.data : "", r->body.len);
  lua_setfield(L, -2, "body");
  lua_pushnumber(L, (double)micros / 1e6);
  lua_setfield(L, -2, "time");
  release(r);
  return 1;
}

static int is_read_method(const char *m) {
  return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 || strcmp(m, "OPTIONS") == 0;
}

static const char *opt_string(lua_State *L, const char *field, const char *def) {
  int t = lua_getfield(L, 1, field);
  const char *s = def;
  if (t == LUA_TSTRING) s = lua_tostring(L, -1);
  else if (t != LUA_TNIL) luaL_error(L, "http.request: '%s' must be a string, not %s", field, lua_typename(L, t));
  lua_pop(L, 1); /* the string stays alive in the options table */
  return s;
}

static double opt_number(lua_State *L, const char *field, double def) {
  int t = lua_getfield(L, 1, field);
  double v = def;
  if (t == LUA_TNUMBER) v = lua_tonumber(L, -1);
  else if (t != LUA_TNIL) luaL_error(L, "http.request: '%s' must be a number, not %s", field, lua_typename(L, t));
  lua_pop(L, 1);
  return v;
}

static int l_request(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  const char *url = opt_string(L, "url", NULL);
  if (!url) return luaL_error(L, "http.request: 'url' is required");
  const char *method = opt_string(L, "method", "GET");
  for (const char *c = method; *c; c++)
    if (!isupper((unsigned char)*c)) return luaL_error(L, "http.request: method '%s' must be upper case", method);
  double timeout = opt_number(L, "timeout", 30);
  double max_size = opt_number(L, "max_size", (double)DEFAULT_MAX_SIZE);
  const char *ca_file = opt_string(L, "ca_file", NULL);
  const char *ca_path = opt_string(L, "ca_path", NULL);
  /* checked before any conversion: NaN, infinities and huge values have no integer form */
  if (!(timeout > 0 && timeout <= MAX_TIMEOUT))
    return luaL_error(L, "http.request: 'timeout' must be a number of seconds above 0 and at most %d",
                      (int)MAX_TIMEOUT);
  if (!(max_size >= 0 && max_size <= MAX_BODY_LIMIT))
    return luaL_error(L, "http.request: 'max_size' must be a number of bytes from 0 to 1e15");
  size_t body_len = 0;
  int bt = lua_getfield(L, 1, "body");
  const char *body = NULL;
  if (bt == LUA_TSTRING) body = lua_tolstring(L, -1, &body_len);
  else if (bt != LUA_TNIL) return luaL_error(L, "http.request: 'body' must be a string (encode tables with sg.json.encode)");
  lua_pop(L, 1);
  /* libcurl would send a GET or HEAD with a body as a POST: the method on the wire must be the
   * one asked for, and --dry-run judges that method */
  if (body && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0))
    return luaL_error(L, "http.request: a %s request cannot carry a body (use POST, PUT or PATCH, or "
                      "put the data in the URL's query)", method);

  if (dry_run && !is_read_method(method)) {
    luaL_pushfail(L);
    lua_pushfstring(L, "dry run: %s %s was not sent", method, url);
    lua_pushliteral(L, "dry_run");
    return 3;
  }

  struct request *r = lua_newuserdatauv(L, sizeof *r, 0);
  memset(r, 0, sizeof *r);
  luaL_setmetatable(L, REQUEST_MT);
  r->max_size = (size_t)max_size;

  if (lua_getfield(L, 1, "headers") == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1))
        return luaL_error(L, "http.request: headers must map names to strings");
      const char *line = lua_pushfstring(L, "%s: %s", lua_tostring(L, -2), lua_tostring(L, -1));
      if (strpbrk(line, "\r\n")) return luaL_error(L, "http.request: header '%s' contains a line break", lua_tostring(L, -3));
      struct curl_slist *h = curl_slist_append(r->headers, line);
      if (!h) return luaL_error(L, "http.request: out of memory");
      r->headers = h;
      lua_pop(L, 2);
    }
  }
  lua_pop(L, 1);
  /* resolve = {"HOST:PORT:ADDRESS", ...}, as curl --resolve: tests give a non-loopback name to a
   * loopback server with it, so a broken check still sends nothing off the machine */
  if (lua_getfield(L, 1, "resolve") == LUA_TTABLE) {
    for (lua_Integer i = 1; lua_rawgeti(L, -1, i) == LUA_TSTRING; i++) {
      struct curl_slist *e = curl_slist_append(r->resolve, lua_tostring(L, -1));
      if (!e) return luaL_error(L, "http.request: out of memory");
      r->resolve = e;
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  } else if (!lua_isnil(L, -1)) {
    return luaL_error(L, "http.request: 'resolve' must be a list of \"HOST:PORT:ADDRESS\" strings");
  }
  lua_pop(L, 1);
  /* curl would otherwise wait for "100 Continue" before sending larger bodies */
  struct curl_slist *h = curl_slist_append(r->headers, "Expect:");
  if (!h) return luaL_error(L, "http.request: out of memory");
  r->headers = h;

  r->easy = take_easy();
  if (!r->easy) return luaL_error(L, "http.request: out of memory");
  CURL *e = r->easy;
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "sgrun/" SGRUN_VERSION);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(timeout * 1000));
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout < 10 ? timeout * 1000 : 10000));
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
  if (ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, ca_file);
  if (ca_path) curl_easy_setopt(e, CURLOPT_CAPATH, ca_path);
  if (r->resolve) curl_easy_setopt(e, CURLOPT_RESOLVE, r->resolve);
  /* never follow a redirect: it could carry the credentials in the headers to another host or
   * scheme; a 3xx is returned as a response */
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max_size);
  /* libcurl silently re-sends a request once when a reused connection turns out dead before any
   * response byte. For a write that may duplicate a create or repeat a positional delete or
   * update (HostUp's DELETE ...?pos=N), so every method that is not a read gets a connection of
   * its own and only the caller's retry policy (which re-reads first) ever repeats it. */
  if (!is_read_method(method)) curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
  if (strcmp(method, "HEAD") == 0) curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  else if (strcmp(method, "GET") != 0) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  if (body) {
    /* the body string is kept alive by the options table on this task's stack */
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
  }

  if (!sg_sched_current() || !lua_isyieldable(L)) return sg_sched_block(L, NULL, NULL, NULL, 0);
  r->task = sg_sched_current();
  in_flight++;
  int rc = sg_curlmux_add(e, on_done, r);
  if (rc != 0) {
    release(r);
    luaL_pushfail(L);
    lua_pushfstring(L, "could not start the request: %s", curl_multi_strerror((CURLMcode)rc));
    lua_pushliteral(L, "curl");
    return 3;
  }
  return sg_sched_block(L, on_cancel, r, request_k, (lua_KContext)r);
}

static int l_in_flight(lua_State *L) {
  lua_pushinteger(L, in_flight);
  return 1;
}

/* Turns dry-run on for the rest of the process; there is deliberately no way to turn it off. */
static int l_dry_run(lua_State *L) {
  if (lua_toboolean(L, 1)) dry_run = 1;
  lua_pushboolean(L, dry_run);
  return 1;
}

/* Runs when the state closes, after every request's own finaliser (it was created first). */
static int close_http(lua_State *L) {
  (void)L;
  while (pooled) curl_easy_cleanup(pool[--pooled]);
  sg_curlmux_cleanup();
  return 0;
}

int luaopen__sg_http(lua_State *L) {
  if (!sg_sched_loop() || sg_curlmux_init(sg_sched_loop()) != 0)
    return luaL_error(L, "http: the event loop is not running in this Lua state");
  if (luaL_newmetatable(L, REQUEST_MT)) {
    lua_pushcfunction(L, request_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  /* the pool and curl itself are released when the state closes: a userdata in the registry owns them */
  lua_newuserdatauv(L, 1, 0);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, close_http);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, "sg.http.pool");
  static const luaL_Reg fns[] = {{"request", l_request}, {"dry_run", l_dry_run},
                                 {"in_flight", l_in_flight}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
