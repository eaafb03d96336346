/* A small HTTP server for the runtime's tests and benchmarks (not the provider emulator).
 * Prints its port on stdout, then serves until killed:
 *   /hello            a fixed short body (benchmarks)
 *   /delay?ms=N&id=X  answers {"id":"X"} after N ms; concurrency is counted for /stats
 *   /stats            {"current":..,"max_concurrent":..,"total":..};  /reset zeroes them
 *   /bytes?n=N        N bytes of 'x'
 *   /status?code=N    an empty response with that status
 *   /echo             the request body back; X-Method, X-Test-Echo (the X-Test header) and
 *                     X-User-Agents (every User-Agent header, joined by " | ") say what came
 *   /echo-auth/...    (any path under it) a hostile server: 401 with the request's Authorization
 *                     and X-API-Key headers echoed in a JSON body {"message", "code", "detail"}
 *                     and in the response headers X-Echo-Authorization and X-Echo-Api-Key
 *   /echo-tail/...    (any path under it) a hostile server that echoes pieces of the credential
 *                     (the Authorization token after its scheme, or the X-API-Key value): 401
 *                     {"code":"unauthorized","message":"bad token ...TAIL ...; did you mean UPPER?"}
 *                     with TAIL the credential without its first character and UPPER it upper-cased
 *                     without its last
 *   /drop             closes the connection without answering
 *   /redirect?to=URL  302 to URL
 *   /headers?n=N&size=S  N extra response headers of S bytes each
 *   /idle-close?s=N   answers {"connection":K} and closes the connection once it has been idle
 *                     N seconds (a server's keep-alive timeout); K numbers the connection, 1 for
 *                     the first the server accepted; /stats counts "connections" opened
 * usage: testserver [--port N]
 * TESTSERVER_CONNECTION_MEMORY=BYTES raises each connection's memory (MHD's default is 32 KiB) for
 * tests that need response headers larger than that. Only those tests set it: libmicrohttpd clears
 * the whole of that memory after every request, which at 2 MiB costs more than the rest of a
 * request and would make every benchmark measure the server's memset. */
#include <ctype.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long current, max_concurrent, total, connections;

struct upload {
  char *data;
  size_t len;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *body, size_t len,
                             const char *type) {
  struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
  if (type) MHD_add_response_header(r, "Content-Type", type);
  enum MHD_Result ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

static long arg_long(struct MHD_Connection *c, const char *name, long def) {
  const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
  return v ? strtol(v, NULL, 10) : def;
}

/* Joins every User-Agent header of a request: a client that sent two must show it. */
static enum MHD_Result collect_agents(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
  (void)kind;
  char *out = cls;
  if (strcasecmp(key, "User-Agent") != 0 || !value) return MHD_YES;
  size_t used = strlen(out);
  snprintf(out + used, 256 - used, "%s%s", used ? " | " : "", value);
  return MHD_YES;
}

/* s as the inside of a JSON string, cut to fit out (size > 0). */
static void json_escape(char *out, size_t size, const char *s) {
  size_t o = 0;
  for (; *s && o + 7 < size; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') {
      out[o++] = '\\';
      out[o++] = (char)ch;
    } else if (ch < 0x20) {
      o += (size_t)snprintf(out + o, size - o, "\\u%04x", ch);
    } else {
      out[o++] = (char)ch;
    }
  }
  out[o] = 0;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *data, size_t *size, void **state) {
  (void)cls;
  (void)version;
  struct upload *up = *state;
  if (!up) {
    *state = calloc(1, sizeof *up);
    return *state ? MHD_YES : MHD_NO;
  }
  if (*size) {
    char *p = realloc(up->data, up->len + *size);
    if (!p) return MHD_NO;
    memcpy(p + up->len, data, *size);
    up->data = p;
    up->len += *size;
    *size = 0;
    return MHD_YES;
  }
  char buf[256];
  if (strcmp(url, "/hello") == 0) return reply(c, 200, "hello\n", 6, "text/plain");
  if (strcmp(url, "/delay") == 0) {
    long ms = arg_long(c, "ms", 0);
    const char *id = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "id");
    pthread_mutex_lock(&lock);
    if (++current > max_concurrent) max_concurrent = current;
    total++;
    pthread_mutex_unlock(&lock);
    usleep((useconds_t)ms * 1000);
    pthread_mutex_lock(&lock);
    current--;
    pthread_mutex_unlock(&lock);
    int n = snprintf(buf, sizeof buf, "{\"id\":\"%.100s\"}", id ? id : "");
    return reply(c, 200, buf, (size_t)n, "application/json");
  }
  if (strcmp(url, "/stats") == 0) {
    pthread_mutex_lock(&lock);
    int n = snprintf(buf, sizeof buf,
                     "{\"current\":%ld,\"max_concurrent\":%ld,\"total\":%ld,\"connections\":%ld}", current,
                     max_concurrent, total, connections);
    pthread_mutex_unlock(&lock);
    return reply(c, 200, buf, (size_t)n, "application/json");
  }
  if (strcmp(url, "/reset") == 0) {
    pthread_mutex_lock(&lock);
    max_concurrent = total = 0;
    pthread_mutex_unlock(&lock);
    return reply(c, 204, "", 0, NULL);
  }
  if (strcmp(url, "/bytes") == 0) {
    long n = arg_long(c, "n", 0);
    if (n < 0 || n > 256L * 1024 * 1024) return reply(c, 400, "bad n\n", 6, "text/plain");
    char *body = malloc((size_t)n + 1);
    if (!body) return MHD_NO;
    memset(body, 'x', (size_t)n);
    struct MHD_Response *r = MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
  }
  if (strcmp(url, "/status") == 0) return reply(c, (unsigned)arg_long(c, "code", 200), "", 0, NULL);
  if (strcmp(url, "/echo") == 0) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(up->len, up->data ? up->data : "", MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "X-Method", method);
    const char *q = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Test");
    if (q) MHD_add_response_header(r, "X-Test-Echo", q);
    char agents[256] = "";
    MHD_get_connection_values(c, MHD_HEADER_KIND, collect_agents, agents);
    if (*agents) MHD_add_response_header(r, "X-User-Agents", agents);
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
  }
  if (strncmp(url, "/echo-auth/", 11) == 0) {
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-API-Key");
    char got[2048];
    json_escape(got, sizeof got, auth ? auth : (key ? key : ""));
    char body[8192];
    int n = snprintf(body, sizeof body,
                     "{\"message\":\"bad credentials: %s\",\"code\":\"%s\",\"detail\":\"Authorization: %s\"}", got,
                     got, got);
    if (n < 0 || (size_t)n >= sizeof body) return reply(c, 500, "", 0, NULL);
    struct MHD_Response *r = MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (auth) MHD_add_response_header(r, "X-Echo-Authorization", auth);
    if (key) MHD_add_response_header(r, "X-Echo-Api-Key", key);
    enum MHD_Result ret = MHD_queue_response(c, 401, r);
    MHD_destroy_response(r);
    return ret;
  }
  if (strncmp(url, "/echo-tail/", 11) == 0) {
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-API-Key");
    const char *cred = auth ? auth : (key ? key : "");
    if (auth && strchr(auth, ' ')) cred = strchr(auth, ' ') + 1;
    char tail[1024], upper[1024];
    json_escape(tail, sizeof tail, *cred ? cred + 1 : "");
    size_t n = strlen(cred);
    char raw[1024];
    if (n >= sizeof raw) n = sizeof raw - 1;
    for (size_t i = 0; i + 1 < n; i++) raw[i] = (char)toupper((unsigned char)cred[i]);
    raw[n ? n - 1 : 0] = 0;
    json_escape(upper, sizeof upper, raw);
    char body[4096];
    int len = snprintf(body, sizeof body,
                       "{\"code\":\"unauthorized\",\"message\":\"bad token ...%s ...; did you mean %s?\"}", tail,
                       upper);
    if (len < 0 || (size_t)len >= sizeof body) return reply(c, 500, "", 0, NULL);
    return reply(c, 401, body, (size_t)len, "application/json");
  }
  if (strcmp(url, "/drop") == 0) return MHD_NO;
  if (strcmp(url, "/idle-close") == 0) {
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)arg_long(c, "s", 1));
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    char body[64];
    int len = snprintf(body, sizeof body, "{\"connection\":%ld}", info ? (long)(intptr_t)info->socket_context : 0L);
    return reply(c, 200, body, (size_t)len, "application/json");
  }
  if (strcmp(url, "/headers") == 0) {
    long n = arg_long(c, "n", 1), size = arg_long(c, "size", 10);
    if (n < 0 || n > 10000 || size < 1 || size > 1000000) return reply(c, 400, "", 0, NULL);
    char *value = malloc((size_t)size + 1);
    if (!value) return MHD_NO;
    memset(value, 'h', (size_t)size);
    value[size] = 0;
    struct MHD_Response *r = MHD_create_response_from_buffer(2, (void *)"{}", MHD_RESPMEM_PERSISTENT);
    for (long i = 0; i < n; i++) {
      char name[32];
      snprintf(name, sizeof name, "X-Big-%ld", i);
      MHD_add_response_header(r, name, value);
    }
    free(value);
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
  }
  if (strcmp(url, "/redirect") == 0) {
    const char *to = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "to");
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Location", to ? to : "/");
    enum MHD_Result ret = MHD_queue_response(c, 302, r);
    MHD_destroy_response(r);
    return ret;
  }
  return reply(c, 404, "not found\n", 10, "text/plain");
}

static void completed(void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode toe) {
  (void)cls;
  (void)c;
  (void)toe;
  struct upload *up = *state;
  if (up) free(up->data);
  free(up);
  *state = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
  (void)cls;
  (void)c;
  if (code != MHD_CONNECTION_NOTIFY_STARTED) return;
  pthread_mutex_lock(&lock);
  *socket_context = (void *)(intptr_t)++connections;
  pthread_mutex_unlock(&lock);
}

static volatile sig_atomic_t stop;
static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

int main(int argc, char **argv) {
  int port = 0;
  if (argc == 3 && strcmp(argv[1], "--port") == 0) port = atoi(argv[2]);
  const char *memory = getenv("TESTSERVER_CONNECTION_MEMORY");
  size_t connection_memory = memory ? strtoul(memory, NULL, 10) : 32 * 1024;
  struct MHD_Daemon *d = MHD_start_daemon(
      MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, (uint16_t)port, NULL,
      NULL, handle, NULL, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
      MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL, MHD_OPTION_CONNECTION_LIMIT, 4000u,
      MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_CONNECTION_TIMEOUT, 60u,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, connection_memory, MHD_OPTION_END);
  if (!d) {
    fprintf(stderr, "testserver: cannot listen\n");
    return 1;
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  printf("%u\n", (unsigned)info->port);
  fflush(stdout);
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  while (!stop) pause();
  MHD_stop_daemon(d);
  return 0;
}
