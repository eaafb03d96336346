#include "curlmux.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct transfer {
  sg_curl_done_fn done;
  void *ud;
};

static struct {
  CURLM *multi;
  sg_loop *loop;
  sg_timer *timer;
  /* By fd: 1 while it is a socket curl opened for a connection. Those are parked between
   * transfers; curl closes other sockets it watches (its threaded resolver's socketpair) without
   * calling close_socket, so a parked one of those could outlive its number. */
  unsigned char *connection;
  int connection_cap;
} mux;

static int is_connection(int fd) { return fd >= 0 && fd < mux.connection_cap && mux.connection[fd]; }

static int mark_connection(int fd, unsigned char on) {
  if (fd < 0) return 0;
  if (fd >= mux.connection_cap) {
    if (!on) return 0;
    int cap = mux.connection_cap ? mux.connection_cap : 64;
    while (cap <= fd) cap *= 2;
    unsigned char *p = realloc(mux.connection, (size_t)cap);
    if (!p) return -1;
    memset(p + mux.connection_cap, 0, (size_t)(cap - mux.connection_cap));
    mux.connection = p;
    mux.connection_cap = cap;
  }
  mux.connection[fd] = on;
  return 0;
}

static void check_done(void) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(mux.multi, &left))) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL *easy = msg->easy_handle;
    CURLcode result = msg->data.result;
    struct transfer *tr = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&tr);
    curl_multi_remove_handle(mux.multi, easy);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
    if (tr) {
      sg_curl_done_fn done = tr->done;
      void *ud = tr->ud;
      free(tr);
      done(ud, result);
    }
  }
}

static void on_socket_ready(void *ud, int fd, int events) {
  (void)ud;
  int flags = (events & SG_READ ? CURL_CSELECT_IN : 0) | (events & SG_WRITE ? CURL_CSELECT_OUT : 0);
  int running;
  curl_multi_socket_action(mux.multi, fd, flags, &running);
  check_done();
}

static void on_timeout(void *ud) {
  (void)ud;
  mux.timer = NULL;
  int running;
  curl_multi_socket_action(mux.multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done();
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  (void)easy;
  (void)userp;
  (void)socketp;
  int events = 0;
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) events |= SG_READ;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) events |= SG_WRITE;
  /* curl removes a kept-alive connection's socket after every transfer and adds it back for the
   * next one: parking it saves two epoll_ctl calls per request. */
  if (what == CURL_POLL_REMOVE && is_connection(fd))
    sg_loop_park(mux.loop, fd);
  else
    sg_loop_watch(mux.loop, fd, what == CURL_POLL_REMOVE ? 0 : events, on_socket_ready, NULL);
  return 0;
}

/* Every socket curl opens for a connection is made here and closed in close_socket, so a parked
 * one never outlives its number. Close-on-exec: a program a playbook starts inherits none. */
static curl_socket_t open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *address) {
  (void)clientp;
  (void)purpose;
  int fd = socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
  if (fd >= 0 && mark_connection(fd, 1) != 0) {
    close(fd);
    return CURL_SOCKET_BAD;
  }
  return fd < 0 ? CURL_SOCKET_BAD : fd;
}

static int close_socket(void *clientp, curl_socket_t fd) {
  (void)clientp;
  mark_connection(fd, 0);
  sg_loop_watch(mux.loop, fd, 0, NULL, NULL);
  return close(fd);
}

/* curl asks for one timer; 0 ms means "soon", which we run on the next loop turn rather than
 * calling back into curl from here. */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp) {
  (void)multi;
  (void)userp;
  if (mux.timer) {
    sg_timer_stop(mux.loop, mux.timer);
    mux.timer = NULL;
  }
  if (timeout_ms >= 0) mux.timer = sg_timer_start(mux.loop, (double)timeout_ms / 1000.0, on_timeout, NULL);
  return 0;
}

int sg_curlmux_init(sg_loop *loop) {
  if (mux.multi) return 0;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return -1;
  mux.multi = curl_multi_init();
  if (!mux.multi) return -1;
  mux.loop = loop;
  curl_multi_setopt(mux.multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
  curl_multi_setopt(mux.multi, CURLMOPT_TIMERFUNCTION, timer_cb);
  curl_multi_setopt(mux.multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  /* keep enough idle connections for a wide fan-out to reuse them on the next round */
  curl_multi_setopt(mux.multi, CURLMOPT_MAXCONNECTS, 1024L);
  return 0;
}

void sg_curlmux_cleanup(void) {
  if (!mux.multi) return;
  if (mux.timer) sg_timer_stop(mux.loop, mux.timer);
  mux.timer = NULL;
  curl_multi_cleanup(mux.multi);
  mux.multi = NULL;
  free(mux.connection);
  mux.connection = NULL;
  mux.connection_cap = 0;
  curl_global_cleanup();
}

int sg_curlmux_add(CURL *easy, sg_curl_done_fn done, void *ud) {
  struct transfer *tr = malloc(sizeof *tr);
  if (!tr) return CURLM_OUT_OF_MEMORY;
  tr->done = done;
  tr->ud = ud;
  curl_easy_setopt(easy, CURLOPT_PRIVATE, tr);
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, open_socket);
  curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, close_socket);
  CURLMcode rc = curl_multi_add_handle(mux.multi, easy);
  if (rc != CURLM_OK) {
    curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
    free(tr);
  }
  return (int)rc;
}

void sg_curlmux_set_host_limit(long n) {
  static long current = 0;
  if (!mux.multi || n == current) return;
  current = n;
  curl_multi_setopt(mux.multi, CURLMOPT_MAX_HOST_CONNECTIONS, n);
}

void sg_curlmux_remove(CURL *easy) {
  struct transfer *tr = NULL;
  curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&tr);
  if (!tr) return;
  curl_multi_remove_handle(mux.multi, easy);
  curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
  free(tr);
}
