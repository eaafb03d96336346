/* An HTTP/1.1 server that kills reused keep-alive connections, to prove that the transport never
 * re-sends a write behind the caller's back (issue 10 item 1). Prints its port on stdout, then
 * serves until killed, one thread, plain sockets (libmicrohttpd would answer before we could
 * drop the connection on a request's first bytes):
 *   - the first request on a connection is answered 200 with keep-alive;
 *   - a later request on the same connection whose method is not GET/HEAD is counted and the
 *     connection is closed on its first bytes, before any answer (what a server restarting or a
 *     load balancer timing out an idle connection looks like to the client);
 *   - GET /count?m=METHOD answers how many requests of METHOD arrived (dropped ones included);
 *     GET /reset zeroes the counts.
 * usage: reuseserver */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strcasestr */
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONN 64
#define BUF 8192

struct conn {
  int fd;
  int served; /* requests answered on this connection */
  size_t len;
  char buf[BUF];
};

static struct conn conns[MAX_CONN];
static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
static long arrivals[sizeof methods / sizeof *methods];

static int method_index(const char *req) {
  for (size_t i = 0; i < sizeof methods / sizeof *methods; i++) {
    size_t n = strlen(methods[i]);
    if (strncmp(req, methods[i], n) == 0 && req[n] == ' ') return (int)i;
  }
  return -1;
}

static void drop(struct conn *c) {
  close(c->fd);
  c->fd = -1;
}

static void answer(struct conn *c, const char *body) {
  char out[512];
  int n = snprintf(out, sizeof out, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                   "Connection: keep-alive\r\nContent-Length: %zu\r\n\r\n%s", strlen(body), body);
  if (write(c->fd, out, (size_t)n) != n) drop(c);
}

/* Handles what is buffered: answers a complete request, drops a reused connection's write. */
static void serve(struct conn *c) {
  c->buf[c->len] = 0;
  int m = method_index(c->buf);
  if (c->served > 0 && m >= 0 && strcmp(methods[m], "GET") != 0 && strcmp(methods[m], "HEAD") != 0) {
    arrivals[m]++;
    drop(c);
    return;
  }
  char *end = strstr(c->buf, "\r\n\r\n");
  if (!end) return; /* wait for the rest of the head */
  size_t body = 0;
  const char *cl = strcasestr(c->buf, "\r\nContent-Length:");
  if (cl && cl < end) body = strtoul(cl + 17, NULL, 10);
  size_t total = (size_t)(end + 4 - c->buf) + body;
  if (c->len < total) return;
  if (m >= 0) arrivals[m]++;
  char body_out[128] = "{}";
  char path[256] = "";
  sscanf(c->buf, "%*s %255s", path);
  if (strncmp(path, "/count?m=", 9) == 0) {
    int which = -1;
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
      if (strcmp(path + 9, methods[i]) == 0) which = (int)i;
    snprintf(body_out, sizeof body_out, "{\"count\":%ld}", which >= 0 ? arrivals[which] : 0L);
  } else if (strcmp(path, "/reset") == 0) {
    memset(arrivals, 0, sizeof arrivals);
  }
  c->served++;
  memmove(c->buf, c->buf + total, c->len - total);
  c->len -= total;
  answer(c, body_out);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof a;
  if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 64) != 0 ||
      getsockname(ls, (struct sockaddr *)&a, &alen) != 0) {
    perror("reuseserver");
    return 1;
  }
  printf("%d\n", ntohs(a.sin_port));
  fflush(stdout);
  for (int i = 0; i < MAX_CONN; i++) conns[i].fd = -1;
  for (;;) {
    struct pollfd p[MAX_CONN + 1];
    int idx[MAX_CONN + 1], n = 0;
    p[n].fd = ls;
    p[n].events = POLLIN;
    idx[n++] = -1;
    for (int i = 0; i < MAX_CONN; i++)
      if (conns[i].fd >= 0) {
        p[n].fd = conns[i].fd;
        p[n].events = POLLIN;
        idx[n++] = i;
      }
    if (poll(p, (nfds_t)n, -1) < 0) continue;
    for (int k = 0; k < n; k++) {
      if (!p[k].revents) continue;
      if (idx[k] < 0) {
        int fd = accept(ls, NULL, NULL);
        if (fd < 0) continue;
        int slot = -1;
        for (int i = 0; i < MAX_CONN && slot < 0; i++)
          if (conns[i].fd < 0) slot = i;
        if (slot < 0) {
          close(fd);
          continue;
        }
        conns[slot] = (struct conn){.fd = fd};
        continue;
      }
      struct conn *c = &conns[idx[k]];
      ssize_t got = read(c->fd, c->buf + c->len, BUF - 1 - c->len);
      if (got <= 0) {
        drop(c);
        continue;
      }
      c->len += (size_t)got;
      serve(c);
      if (c->fd >= 0 && c->len >= BUF - 1) drop(c);
    }
  }
}
