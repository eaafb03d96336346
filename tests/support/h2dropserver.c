/* An HTTP/2-over-TLS server that resets connections while a write is on them, to prove that the
 * transport never re-sends a write on h2 either (issue 14). nginx and nghttpd only close in
 * order (GOAWAY); this one drops the TCP connection (RST) in the middle of a request.
 *
 * Just enough HTTP/2 for libcurl/nghttp2 as a client: no HPACK decoding (a request is told apart
 * by its body), every answer is ":status 200" (static table entry 8) with the body "ok".
 * A request whose HEADERS end the stream (a GET) is answered at once. A request with a body
 * starts with "ID MODE " and MODE decides:
 *   drop-mid    the connection is reset on the body's first DATA frame (the client is still
 *               sending: the body is larger than the flow-control window);
 *   drop-after  the whole body arrives (the "create" is applied), then the connection is reset
 *               before any answer;
 *   ok          answered 200.
 * Each event is a line of LOG: "start ID CONN STREAM", "complete ID CONN STREAM",
 * "drop ID CONN STREAM", "get - CONN STREAM" (CONN: the connection's serial number).
 * usage: h2dropserver CERT KEY LOG   (prints its port on stdout, serves until killed) */
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FRAME 16384 /* SETTINGS_MAX_FRAME_SIZE's default: we announce no other */
#define MAX_STREAMS 256

enum { DATA = 0, HEADERS = 1, SETTINGS = 4, PING = 6, GOAWAY = 7, WINDOW_UPDATE = 8 };
enum { END_STREAM = 1, ACK = 1, END_HEADERS = 4, PADDED = 8 };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_file;
static long serials;

struct stream {
  uint32_t id;
  char name[64], mode[16]; /* from the body's first bytes */
};

struct conn {
  SSL *ssl;
  int fd;
  long serial;
  struct stream streams[MAX_STREAMS];
};

static void event(const char *what, const char *name, const struct conn *c, uint32_t stream) {
  pthread_mutex_lock(&lock);
  fprintf(log_file, "%s %s %ld %u\n", what, name, c->serial, stream);
  fflush(log_file);
  pthread_mutex_unlock(&lock);
}

static int read_full(SSL *ssl, unsigned char *p, size_t n) {
  while (n) {
    int got = SSL_read(ssl, p, (int)n);
    if (got <= 0) return -1;
    p += got;
    n -= (size_t)got;
  }
  return 0;
}

static int send_frame(struct conn *c, int type, int flags, uint32_t stream, const void *payload, size_t len) {
  unsigned char f[9 + 16];
  f[0] = (unsigned char)(len >> 16);
  f[1] = (unsigned char)(len >> 8);
  f[2] = (unsigned char)len;
  f[3] = (unsigned char)type;
  f[4] = (unsigned char)flags;
  f[5] = (unsigned char)(stream >> 24 & 0x7f);
  f[6] = (unsigned char)(stream >> 16);
  f[7] = (unsigned char)(stream >> 8);
  f[8] = (unsigned char)stream;
  if (len > 16) return -1;
  memcpy(f + 9, payload, len);
  return SSL_write(c->ssl, f, (int)(9 + len)) == (int)(9 + len) ? 0 : -1;
}

static int answer(struct conn *c, uint32_t stream) {
  static const unsigned char status_200 = 0x88;
  if (send_frame(c, HEADERS, END_HEADERS, stream, &status_200, 1) != 0) return -1;
  return send_frame(c, DATA, END_STREAM, stream, "ok", 2);
}

static int window_update(struct conn *c, uint32_t stream, uint32_t n) {
  unsigned char inc[4] = {(unsigned char)(n >> 24 & 0x7f), (unsigned char)(n >> 16), (unsigned char)(n >> 8),
                          (unsigned char)n};
  return send_frame(c, WINDOW_UPDATE, 0, stream, inc, 4);
}

/* A reset, not a close: the peer sees ECONNRESET, as when a server or a middlebox dies. */
static void reset(struct conn *c) {
  struct linger l = {1, 0};
  setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

static struct stream *find(struct conn *c, uint32_t id, int create) {
  for (int i = 0; i < MAX_STREAMS; i++)
    if (c->streams[i].id == id) return &c->streams[i];
  if (!create) return NULL;
  for (int i = 0; i < MAX_STREAMS; i++)
    if (!c->streams[i].id) {
      memset(&c->streams[i], 0, sizeof c->streams[i]);
      c->streams[i].id = id;
      return &c->streams[i];
    }
  return NULL;
}

/* Returns when the connection ends; 1 when it is to be reset rather than closed. */
static int serve(struct conn *c) {
  static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  unsigned char buf[MAX_FRAME + 9];
  if (read_full(c->ssl, buf, 24) != 0 || memcmp(buf, preface, 24) != 0) return 0;
  if (send_frame(c, SETTINGS, 0, 0, "", 0) != 0) return 0;
  for (;;) {
    unsigned char h[9];
    if (read_full(c->ssl, h, 9) != 0) return 0;
    size_t len = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
    int type = h[3], flags = h[4];
    uint32_t sid = ((uint32_t)h[5] & 0x7f) << 24 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 8 | h[8];
    if (len > MAX_FRAME || read_full(c->ssl, buf, len) != 0) return 0;
    switch (type) {
    case SETTINGS:
      if (!(flags & ACK) && send_frame(c, SETTINGS, ACK, 0, "", 0) != 0) return 0;
      break;
    case PING:
      if (!(flags & ACK) && len == 8 && send_frame(c, PING, ACK, 0, buf, 8) != 0) return 0;
      break;
    case GOAWAY:
      return 0;
    case HEADERS:
      if (flags & END_STREAM) {
        event("get", "-", c, sid);
        if (answer(c, sid) != 0) return 0;
      } else if (!find(c, sid, 1)) {
        return 0;
      }
      break;
    case DATA: {
      struct stream *s = find(c, sid, 0);
      if (!s) break;
      const unsigned char *p = buf;
      size_t n = len;
      if (flags & PADDED) {
        if (!n || buf[0] >= n) return 0;
        n -= 1 + (size_t)buf[0];
        p++;
      }
      if (!s->name[0]) {
        char first[128];
        size_t k = n < sizeof first - 1 ? n : sizeof first - 1;
        memcpy(first, p, k);
        first[k] = 0;
        if (sscanf(first, "%63s %15s", s->name, s->mode) != 2) snprintf(s->name, sizeof s->name, "?");
        event("start", s->name, c, sid);
        if (strcmp(s->mode, "drop-mid") == 0) {
          event("drop", s->name, c, sid);
          return 1;
        }
      }
      if (len && (window_update(c, 0, (uint32_t)len) != 0 || window_update(c, sid, (uint32_t)len) != 0)) return 0;
      if (flags & END_STREAM) {
        event("complete", s->name, c, sid);
        if (strcmp(s->mode, "drop-after") == 0) {
          event("drop", s->name, c, sid);
          return 1;
        }
        if (answer(c, sid) != 0) return 0;
        s->id = 0;
      }
      break;
    }
    default:
      break; /* PRIORITY, RST_STREAM, WINDOW_UPDATE, CONTINUATION: nothing to do here */
    }
  }
}

static SSL_CTX *ctx;

static void *run(void *arg) {
  struct conn *c = arg;
  c->ssl = SSL_new(ctx);
  SSL_set_fd(c->ssl, c->fd);
  if (SSL_accept(c->ssl) == 1) {
    if (serve(c)) reset(c);
    else SSL_shutdown(c->ssl);
  }
  SSL_free(c->ssl);
  close(c->fd);
  free(c);
  return NULL;
}

/* h2 only: a client that does not offer it is refused, so every test request really is HTTP/2 */
static int alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                unsigned inlen, void *arg) {
  (void)ssl;
  (void)arg;
  for (unsigned i = 0; i < inlen; i += 1u + in[i])
    if (in[i] == 2 && i + 3 <= inlen && memcmp(in + i + 1, "h2", 2) == 0) {
      *out = in + i + 1;
      *outlen = 2;
      return SSL_TLSEXT_ERR_OK;
    }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: h2dropserver CERT KEY LOG\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  log_file = fopen(argv[3], "a");
  ctx = SSL_CTX_new(TLS_server_method());
  if (!log_file || !ctx || SSL_CTX_use_certificate_chain_file(ctx, argv[1]) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, argv[2], SSL_FILETYPE_PEM) != 1) {
    ERR_print_errors_fp(stderr);
    fprintf(stderr, "h2dropserver: cannot set up (log, certificate or key)\n");
    return 1;
  }
  SSL_CTX_set_alpn_select_cb(ctx, alpn, NULL);
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof a;
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 128) != 0 ||
      getsockname(lfd, (struct sockaddr *)&a, &alen) != 0) {
    perror("h2dropserver");
    return 1;
  }
  printf("%d\n", ntohs(a.sin_port));
  fflush(stdout);
  for (;;) {
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0) continue;
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
      close(fd);
      continue;
    }
    c->fd = fd;
    pthread_mutex_lock(&lock);
    c->serial = ++serials;
    pthread_mutex_unlock(&lock);
    pthread_t th;
    if (pthread_create(&th, NULL, run, c) != 0) {
      close(fd);
      free(c);
      continue;
    }
    pthread_detach(th);
  }
}
