/* _sg.http: request{method, url, headers, body, timeout, max_size, max_connections, ca_file, ca_path,
 * resolve} over the runtime's curl multiplexer; ca_file defaults to $SGRUN_CA_FILE; max_connections
 * is libcurl's per-host limit, which is one for the whole process (the last value set). The calling
 * task waits; an HTTP error status is a response, transport failures return nil, message, code
 * with a stable code. */
#include <lauxlib.h>
#include <lua.h>

#include <curl/curl.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* Options a request may move away from a handle's base configuration; the next request on the
 * handle puts back only those it does not want itself. */
enum { SET_BODY = 1, SET_NOBODY = 2, SET_CUSTOM = 4, SET_FRESH = 8, SET_PIPEWAIT = 16, SET_RESOLVE = 32 };

/* An easy handle and what stays with it between requests. Reusing the handle keeps its DNS and
 * TLS session caches warm; keeping the rest saves, per request, curl_easy_reset and a full
 * set-up (about 4.4k instructions), the response buffers' allocations and the header list's. */
struct handle {
  CURL *easy;
  struct buffer body, head;
  struct buffer lines;        /* request header lines, NUL-separated, that nodes point into */
  struct curl_slist *nodes;   /* CURLOPT_HTTPHEADER, built in place; never curl_slist_free_all'd */
  size_t nodes_cap;
  size_t max_size;
  int head_lines;             /* header fields in head, to presize the Lua table */
  int too_large, headers_too_large;
  unsigned set;               /* SET_* */
  const char *proxy;          /* CURLOPT_PROXY as set: proxy_env.http or .https, or NULL */
  char *ca_file, *ca_path;    /* copies of CURLOPT_CAINFO/CAPATH as set; NULL is curl's default */
  char errbuf[CURL_ERROR_SIZE];
};

struct request {
  struct handle *h;
  sg_transfer *transfer; /* while the transport has the handle */
  struct curl_slist *resolve;
  int done;
  CURLcode result;
  sg_task *task;
};

/* Idle handles. */
static struct handle *pool[POOL_MAX];
static int pooled;
static int dry_run;
static int in_flight; /* transfers handed to curl and not yet released */

/* libcurl reads the proxy variables (no_proxy, <scheme>_proxy, all_proxy) from the environment
 * on every request (about 2k instructions); sgrun reads them once per Lua state, in libcurl's
 * order, and sets them as options. "" tells libcurl "no proxy" and stops it from looking. The
 * values are copies: the environment may change under a running emulator. */
static struct {
  int done;
  char *http, *https, *no_proxy;
} proxy_env;

/* The first of two variables that is set and not empty, else "". */
static const char *env_first(const char *a, const char *b) {
  const char *v = getenv(a);
  if ((!v || !*v) && b) v = getenv(b);
  return v && *v ? v : "";
}

static void forget_proxy_env(void) {
  free(proxy_env.http);
  free(proxy_env.https);
  free(proxy_env.no_proxy);
  memset(&proxy_env, 0, sizeof proxy_env);
}

static int resolve_proxy_env(void) {
  if (proxy_env.done) return 0;
  const char *all = env_first("all_proxy", "ALL_PROXY");
  /* never HTTP_PROXY in upper case, as libcurl: a CGI program gets it from a request's "Proxy:"
   * header */
  const char *http = env_first("http_proxy", NULL), *https = env_first("https_proxy", "HTTPS_PROXY");
  proxy_env.http = strdup(*http ? http : all);
  proxy_env.https = strdup(*https ? https : all);
  proxy_env.no_proxy = strdup(env_first("no_proxy", "NO_PROXY"));
  if (!proxy_env.http || !proxy_env.https || !proxy_env.no_proxy) {
    forget_proxy_env();
    return -1;
  }
  proxy_env.done = 1;
  return 0;
}

/* Whether a plain http:// URL names this machine (localhost and *.localhost, 127.0.0.0/8,
 * [::1], as sg.connect's is_loopback): the only place sg.connect sends credentials in clear text
 * unasked, and no proxy may see them. */
static int plain_loopback(const char *url) {
  if (strncasecmp(url, "http://", 7) != 0) return 0;
  const char *host = url + 7, *end = host + strcspn(host, "/?#");
  const char *at = memchr(host, '@', (size_t)(end - host));
  if (at) host = at + 1;
  size_t len = (size_t)(end - host);
  if (len >= 5 && strncmp(host, "[::1]", 5) == 0) return 1;
  size_t name = strcspn(host, ":/?#");
  if (name > len) name = len;
  if (name >= 9 && strncasecmp(host + name - 9, "localhost", 9) == 0 && (name == 9 || host[name - 10] == '.'))
    return 1;
  return name >= 4 && strncmp(host, "127.", 4) == 0 && strspn(host, "0123456789.") >= name;
}

/* Response buffers above this are freed when their handle goes back to the pool: a large answer
 * must not stay pinned in an idle handle. */
#define KEEP_BUFFER (64 * 1024)

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud);
static size_t on_header(char *data, size_t size, size_t nmemb, void *ud);

/* The options every request shares: set when the handle is made and after a reset. */
static void configure(struct handle *h) {
  CURL *e = h->easy;
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  /* a request cancelled while its host name resolves leaves the resolver thread to finish alone:
   * otherwise the transport thread, and the main thread waiting for it, wait for getaddrinfo */
  curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
  /* never follow a redirect: it could carry the credentials in the headers to another host or
   * scheme; a 3xx is returned as a response */
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, h);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, h);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->errbuf);
  curl_easy_setopt(e, CURLOPT_NOPROXY, proxy_env.no_proxy);
  h->proxy = NULL;
  h->set = 0;
}

static struct handle *take_handle(void) {
  if (pooled) return pool[--pooled];
  struct handle *h = calloc(1, sizeof *h);
  if (!h) return NULL;
  h->easy = curl_easy_init();
  if (!h->easy) {
    free(h);
    return NULL;
  }
  configure(h);
  return h;
}

static void free_buffer(struct buffer *b) {
  free(b->data);
  memset(b, 0, sizeof *b);
}

static void free_handle(struct handle *h) {
  curl_easy_cleanup(h->easy);
  free_buffer(&h->body);
  free_buffer(&h->head);
  free_buffer(&h->lines);
  free(h->nodes);
  free(h->ca_file);
  free(h->ca_path);
  free(h);
}

static void give_back_handle(struct handle *h) {
  if (pooled == POOL_MAX) {
    free_handle(h);
    return;
  }
  /* the request's body string and resolve list are about to go: curl keeps no pointer to them */
  if (h->set & SET_BODY) {
    curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, NULL);
    curl_easy_setopt(h->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
    curl_easy_setopt(h->easy, CURLOPT_HTTPGET, 1L);
    h->set &= ~(unsigned)(SET_BODY | SET_NOBODY);
  }
  if (h->set & SET_RESOLVE) {
    curl_easy_setopt(h->easy, CURLOPT_RESOLVE, NULL);
    h->set &= ~(unsigned)SET_RESOLVE;
  }
  if (h->body.cap > KEEP_BUFFER) free_buffer(&h->body);
  if (h->head.cap > KEEP_BUFFER) free_buffer(&h->head);
  if (h->lines.cap > KEEP_BUFFER) free_buffer(&h->lines);
  pool[pooled++] = h;
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
  struct handle *h = ud;
  size_t n = size * nmemb;
  if (h->body.len + n > h->max_size) {
    h->too_large = 1;
    return 0; /* makes curl stop with CURLE_WRITE_ERROR */
  }
  return append(&h->body, data, n) == 0 ? n : 0;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud) {
  struct handle *h = ud;
  size_t n = size * nmemb;
  /* a new status line (after 1xx or a redirect) starts a new header block */
  int status_line = n >= 5 && memcmp(data, "HTTP/", 5) == 0;
  if (status_line) {
    h->head.len = 0;
    h->head_lines = 0;
  }
  if (h->head.len + n > HEADER_LIMIT) {
    h->headers_too_large = 1;
    return 0; /* stops the transfer */
  }
  if (!status_line && n > 2) h->head_lines++; /* not the blank line that ends the block */
  return append(&h->head, data, n) == 0 ? n : 0;
}

static void release(struct request *r) {
  if (r->task) {
    in_flight--;
    r->task = NULL;
  }
  if (r->transfer) {
    sg_curlmux_remove(r->transfer);
    r->transfer = NULL;
  }
  if (r->h) {
    give_back_handle(r->h);
    r->h = NULL;
  }
  curl_slist_free_all(r->resolve);
  r->resolve = NULL;
}

static int request_gc(lua_State *L) {
  release(luaL_checkudata(L, 1, REQUEST_MT));
  return 0;
}

static void on_done(void *ud, CURLcode result) {
  struct request *r = ud;
  r->transfer = NULL;
  r->done = 1;
  r->result = result;
  /* a Content-Length over the cap stops the transfer before the body arrives */
  if (result == CURLE_FILESIZE_EXCEEDED) r->h->too_large = 1;
  sg_sched_wake_keep_cancel(r->task);
}

static void on_cancel(void *ud) { release(ud); }

/* libcurl refuses a header line over its own limit (100 KiB) with CURLE_OUT_OF_MEMORY, its only
 * common cause here; the message names both. */
static int header_refused(const struct request *r) {
  return r->h->headers_too_large || r->result == CURLE_OUT_OF_MEMORY;
}

static const char *failure_code(const struct request *r) {
  if (r->h->too_large || header_refused(r)) return "too_large";
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

/* The response's header lines as a table of lower-case names; the names are lower-cased in
 * place (the buffer is the handle's own and is rewritten by the next response). */
static void push_headers(lua_State *L, struct handle *h) {
  lua_createtable(L, 0, h->head_lines);
  if (!h->head.data) return;
  char *p = h->head.data, *end = h->head.data + h->head.len;
  while (p < end) {
    char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) eol = end;
    char *colon = memchr(p, ':', (size_t)(eol - p));
    if (colon && memcmp(p, "HTTP/", 5) != 0) {
      for (char *c = p; c < colon; c++) *c = (char)tolower((unsigned char)*c);
      lua_pushlstring(L, p, (size_t)(colon - p));
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
  struct handle *h = r->h;
  if (r->result != CURLE_OK || h->too_large || h->headers_too_large) {
    luaL_pushfail(L);
    if (h->too_large)
      lua_pushfstring(L, "response body larger than the %I byte limit (max_size)", (lua_Integer)h->max_size);
    else if (header_refused(r))
      lua_pushfstring(L, "response headers larger than the limit (%d bytes in all, 100 KiB a line)%s: "
                      "the server sent more than any API answer needs", HEADER_LIMIT,
                      h->headers_too_large ? "" : ", or memory ran out");
    else
      lua_pushfstring(L, "%s%s%s", curl_easy_strerror(r->result), h->errbuf[0] ? ": " : "",
                      h->errbuf);
    lua_pushstring(L, failure_code(r));
    release(r);
    return 3;
  }
  long code = 0;
  curl_off_t micros = 0;
  curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_getinfo(h->easy, CURLINFO_TOTAL_TIME_T, &micros);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, code);
  lua_setfield(L, -2, "status");
  push_headers(L, h);
  lua_setfield(L, -2, "headers");
  lua_pushlstring(L, h->body.data ? h->body.data : "", h->body.len);
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

static int same_string(const char *a, const char *b) {
  return a == b || (a && b && strcmp(a, b) == 0);
}

/* Sets a 0/1 option when it differs from what the handle has. */
static void set_flag(struct handle *h, unsigned flag, int on, CURLoption opt) {
  if (!on == !(h->set & flag)) return;
  curl_easy_setopt(h->easy, opt, (long)(on != 0));
  h->set ^= flag;
}

/* Edit distance (insertions, deletions, substitutions) between name and a known option name
 * (shorter than 32 bytes), as sg.optcheck measures it. */
static size_t edit_distance(const char *name, size_t len, const char *known) {
  size_t klen = strlen(known), previous[32], row[32];
  for (size_t j = 0; j <= klen; j++) previous[j] = j;
  for (size_t i = 1; i <= len; i++) {
    row[0] = i;
    for (size_t j = 1; j <= klen; j++) {
      size_t substitute = previous[j - 1] + (name[i - 1] != known[j - 1]);
      size_t insert_or_delete = (previous[j] < row[j - 1] ? previous[j] : row[j - 1]) + 1;
      row[j] = substitute < insert_or_delete ? substitute : insert_or_delete;
    }
    memcpy(previous, row, (klen + 1) * sizeof *row);
  }
  return previous[klen];
}

/* Whether name and known differ only in case, '_' and '-'. */
static int same_but_case_and_separators(const char *name, size_t len, const char *known) {
  size_t i = 0;
  for (;;) {
    while (i < len && (name[i] == '_' || name[i] == '-')) i++;
    while (*known == '_' || *known == '-') known++;
    if (i == len || !*known) return i == len && !*known;
    if (tolower((unsigned char)name[i]) != tolower((unsigned char)*known)) return 0;
    i++;
    known++;
  }
}

/* The known name a misspelt one most likely meant, by sg.optcheck's rule (stdlib/sg/optcheck.lua,
 * so that every "did you mean" of sgrun guesses alike): a case or separator slip, or at most two
 * edits away (a third of the known name, for short ones); the closest, the first of equals in
 * known's (sorted) order. NULL when none is that close. */
static const char *nearest_name(const char *name, size_t len, const char *const *known, size_t nknown) {
  const char *best = NULL;
  size_t best_distance = 0;
  for (size_t k = 0; k < nknown; k++) {
    size_t klen = strlen(known[k]), third = klen / 3;
    size_t limit = third < 1 ? 1 : third > 2 ? 2 : third;
    size_t distance;
    if (same_but_case_and_separators(name, len, known[k])) distance = 0;
    else if ((len > klen ? len - klen : klen - len) > limit) continue; /* as many edits at least */
    else distance = edit_distance(name, len, known[k]);
    if (distance <= limit && (!best || distance < best_distance)) {
      best = known[k];
      best_distance = distance;
    }
  }
  return best;
}

/* A misspelt option would otherwise be dropped: {methd = "POST"} would send a GET. */
static void check_option_names(lua_State *L) {
  /* sorted: the message lists them so, and a tie between guesses goes to the first */
  static const char *const known[] = {"body",     "ca_file", "ca_path", "headers", "max_connections",
                                      "max_size", "method",  "resolve", "timeout", "url"};
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    lua_pop(L, 1);
    int is_string = lua_type(L, -1) == LUA_TSTRING, found = 0;
    const char *guess = NULL;
    if (is_string) {
      size_t len;
      const char *name = lua_tolstring(L, -1, &len);
      for (size_t i = 0; i < sizeof known / sizeof *known && !found; i++) found = strcmp(name, known[i]) == 0;
      if (!found) guess = nearest_name(name, len, known, sizeof known / sizeof *known);
    }
    if (!found) {
      const char *quote = is_string ? "'" : "";
      const char *name = luaL_tolstring(L, -1, NULL);
      luaL_error(L, "http.request: unknown option %s%s%s%s%s%s (known: body, ca_file, ca_path, headers, "
                 "max_connections, max_size, method, resolve, timeout, url)", quote, name, quote,
                 guess ? "; did you mean '" : "", guess ? guess : "", guess ? "'?" : "");
    }
  }
}

static int l_request(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  check_option_names(L);
  const char *url = opt_string(L, "url", NULL);
  if (!url) return luaL_error(L, "http.request: 'url' is required");
  const char *method = opt_string(L, "method", "GET");
  for (const char *c = method; *c; c++)
    if (!isupper((unsigned char)*c)) return luaL_error(L, "http.request: method '%s' must be upper case", method);
  double timeout = opt_number(L, "timeout", 30);
  double max_size = opt_number(L, "max_size", (double)DEFAULT_MAX_SIZE);
  double max_connections = opt_number(L, "max_connections", -1);
  const char *ca_file = opt_string(L, "ca_file", NULL);
  const char *ca_path = opt_string(L, "ca_path", NULL);
  /* SGRUN_CA_FILE (what `sgrun sim --tls` writes to its env file) names the CA of every
   * connection that does not name its own: a private CA is trusted with verification left on */
  if (!ca_file && !ca_path) {
    const char *env = getenv("SGRUN_CA_FILE");
    if (env && *env) ca_file = env;
  }
  /* checked before any conversion: NaN, infinities and huge values have no integer form */
  if (!(timeout > 0 && timeout <= MAX_TIMEOUT))
    return luaL_error(L, "http.request: 'timeout' must be a number of seconds above 0 and at most %d",
                      (int)MAX_TIMEOUT);
  if (!(max_size >= 0 && max_size <= MAX_BODY_LIMIT))
    return luaL_error(L, "http.request: 'max_size' must be a number of bytes from 0 to 1e15");
  if (max_connections != -1 && !(max_connections >= 1 && max_connections <= 100000 &&
                                 max_connections == (long)max_connections))
    return luaL_error(L, "http.request: 'max_connections' must be a whole number from 1 to 100000");
  size_t body_len = 0;
  int bt = lua_getfield(L, 1, "body");
  const char *body = NULL;
  if (bt == LUA_TSTRING) body = lua_tolstring(L, -1, &body_len);
  else if (bt != LUA_TNIL) return luaL_error(L, "http.request: 'body' must be a string (encode tables with sg.json.encode)");
  /* the body string stays on this call's stack, where the task keeps it until the request is
   * over (its continuation ran, or its cancel removed the transfer): curl reads it from there,
   * on a transport thread, while the caller may drop its own reference (opts.body = nil) */
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
  r->h = take_handle();
  if (!r->h) return luaL_error(L, "http.request: out of memory");
  struct handle *h = r->h;

  /* "name: value" lines written one after another into the handle's buffer, then linked */
  size_t nlines = 0;
  int own_ua = 0;
  h->lines.len = 0;
  if (lua_getfield(L, 1, "headers") == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1))
        return luaL_error(L, "http.request: headers must map names to strings");
      /* up to a NUL, as curl reads each line */
      const char *name = lua_tostring(L, -2), *value = lua_tostring(L, -1);
      size_t nlen = strlen(name), vlen = strlen(value);
      if (strpbrk(name, "\r\n") || strpbrk(value, "\r\n"))
        return luaL_error(L, "http.request: header '%s' contains a line break", name);
      if (append(&h->lines, name, nlen) || append(&h->lines, ": ", 2) || append(&h->lines, value, vlen + 1))
        return luaL_error(L, "http.request: out of memory");
      nlines++;
      if (nlen == 10 && strncasecmp(name, "User-Agent", 10) == 0) own_ua = 1;
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  if (nlines + 1 > h->nodes_cap) {
    struct curl_slist *n = realloc(h->nodes, (nlines + 1) * sizeof *n);
    if (!n) return luaL_error(L, "http.request: out of memory");
    h->nodes = n;
    h->nodes_cap = nlines + 1;
  }
  char *line = h->lines.data;
  for (size_t i = 0; i < nlines; i++) {
    h->nodes[i].data = line;
    h->nodes[i].next = &h->nodes[i + 1];
    line += strlen(line) + 1;
  }
  /* curl would otherwise wait for "100 Continue" before sending larger bodies */
  static char no_expect[] = "Expect:";
  /* sgrun's User-Agent rides the header list unless the caller set one: as CURLOPT_USERAGENT
   * libcurl formats it anew for every request (about 2.5k instructions). It is not sent on a
   * proxy's CONNECT, which carries no other header of the list either. */
  static char ua[] = "User-Agent: sgrun/" SGRUN_VERSION;
  static struct curl_slist ua_node = {ua, NULL};
  h->nodes[nlines].data = no_expect;
  h->nodes[nlines].next = own_ua ? NULL : &ua_node;

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

  CURL *e = h->easy;
  /* No option puts curl's default CA back once another was set: a handle that had other CA
   * options than this request's starts over from a reset. Requests to one service share theirs,
   * so this is rare. */
  if (!same_string(h->ca_file, ca_file) || !same_string(h->ca_path, ca_path)) {
    curl_easy_reset(e);
    configure(h);
    free(h->ca_file);
    free(h->ca_path);
    h->ca_file = h->ca_path = NULL;
    char *f = ca_file ? strdup(ca_file) : NULL, *d = ca_path ? strdup(ca_path) : NULL;
    if ((ca_file && !f) || (ca_path && !d)) {
      free(f);
      free(d);
      return luaL_error(L, "http.request: out of memory");
    }
    if (f) curl_easy_setopt(e, CURLOPT_CAINFO, f);
    if (d) curl_easy_setopt(e, CURLOPT_CAPATH, d);
    h->ca_file = f;
    h->ca_path = d;
  }
  int https = strncasecmp(url, "https://", 8) == 0;
  /* a proxy would be a second host reading the credentials of a clear-text loopback request */
  const char *proxy = https ? proxy_env.https : plain_loopback(url) ? "" : proxy_env.http;
  if (h->proxy != proxy) {
    curl_easy_setopt(e, CURLOPT_PROXY, proxy);
    h->proxy = proxy;
  }
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->nodes);
  /* rounded up: a timeout under a millisecond truncated to 0, which is libcurl's "no timeout" */
  long timeout_ms = (long)(timeout * 1000);
  if (timeout_ms < timeout * 1000) timeout_ms++;
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 10000 ? timeout_ms : 10000L);
  if (r->resolve) {
    curl_easy_setopt(e, CURLOPT_RESOLVE, r->resolve);
    h->set |= SET_RESOLVE;
  }
  h->max_size = (size_t)max_size;
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)h->max_size);
  h->body.len = h->head.len = 0;
  h->head_lines = 0;
  h->too_large = h->headers_too_large = 0;
  h->errbuf[0] = 0;
  int write = !is_read_method(method);
  /* libcurl silently re-sends a request once when a reused connection turns out dead before any
   * response byte. For a write that may duplicate a create or repeat a positional delete or
   * update (HostUp's DELETE ...?pos=N), so every method that is not a read gets a connection of
   * its own and only the caller's retry policy (which re-reads first) ever repeats it. */
  set_flag(h, SET_FRESH, write, CURLOPT_FRESH_CONNECT);
  /* a burst of reads to a new host waits for the first connection's handshake: when ALPN says
   * h2 they all ride it, instead of each opening a connection before anyone knows. Plain http://
   * never speaks h2 here (CURL_HTTP_VERSION_2TLS), and there curl would only learn that from the
   * first response, holding the burst back for one whole request. */
  set_flag(h, SET_PIPEWAIT, !write && https, CURLOPT_PIPEWAIT);
  if (max_connections > 0) sg_curlmux_set_host_limit((long)max_connections);
  int head = strcmp(method, "HEAD") == 0;
  set_flag(h, SET_NOBODY, head, CURLOPT_NOBODY);
  if (!head && strcmp(method, "GET") != 0) {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    h->set |= SET_CUSTOM;
  } else if (h->set & SET_CUSTOM) {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
    h->set &= ~(unsigned)SET_CUSTOM;
  }
  if (body) {
    /* the body string is kept alive on this call's stack (above); the handle drops the pointer
     * when it goes back to the pool */
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    h->set |= SET_BODY;
  }

  if (!sg_sched_current() || !lua_isyieldable(L)) return sg_sched_block(L, NULL, NULL, NULL, 0);
  r->task = sg_sched_current();
  in_flight++;
  r->transfer = sg_curlmux_add(e, url, proxy, on_done, r);
  if (!r->transfer) {
    release(r);
    luaL_pushfail(L);
    lua_pushliteral(L, "could not start the request: out of memory (or file descriptors); free some and retry");
    lua_pushliteral(L, "curl");
    return 3;
  }
  return sg_sched_block(L, on_cancel, r, request_k, (lua_KContext)r);
}

static int l_in_flight(lua_State *L) {
  lua_pushinteger(L, in_flight);
  return 1;
}

/* How many threads carry transfers: each keeps connections of its own, so a burst of HTTP/2
 * requests to one host opens up to this many. */
static int l_threads(lua_State *L) {
  lua_pushinteger(L, sg_curlmux_threads());
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
  while (pooled) free_handle(pool[--pooled]);
  forget_proxy_env();
  sg_curlmux_cleanup();
  return 0;
}

/* SGRUN_TRANSPORT_THREADS: how many threads carry transfers, for a machine shared with other
 * work or a benchmark's comparison; unset, the multiplexer's default. */
static int transport_threads(lua_State *L) {
  const char *v = getenv("SGRUN_TRANSPORT_THREADS");
  if (!v || !*v) return sg_curlmux_default_threads();
  char *end;
  long n = strtol(v, &end, 10);
  if (*end || n < 1 || n > SG_CURLMUX_MAX_THREADS)
    luaL_error(L, "SGRUN_TRANSPORT_THREADS must be a whole number from 1 to %d: set one, or unset it for the "
                  "default (%d here)", SG_CURLMUX_MAX_THREADS, sg_curlmux_default_threads());
  return (int)n;
}

int luaopen__sg_http(lua_State *L) {
  if (!sg_sched_loop()) return luaL_error(L, "http: the event loop is not running in this Lua state");
  if (sg_curlmux_init(sg_sched_loop(), transport_threads(L)) != 0)
    return luaL_error(L, "http: could not start the transport threads (out of memory, threads or file "
                         "descriptors): free some and run again");
  if (resolve_proxy_env() != 0) return luaL_error(L, "http: out of memory");
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
                                 {"in_flight", l_in_flight}, {"threads", l_threads}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
