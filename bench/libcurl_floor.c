/* The fastest this machine's libcurl goes with no Lua and no sgrun around it: N GETs to one URL,
 * C in flight, through the same multi-socket API, epoll loop and keep-alive reuse that sgrun
 * uses, each easy handle re-added as soon as its transfer ends. bench/run.sh throughput runs it
 * beside wrk and sgrun, so the gap to wrk splits into libcurl's share and sgrun's own.
 * usage: libcurl_floor URL [requests] [in_flight]; prints requests per second. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>

static CURLM *multi;
static int epfd;
static long timeout_ms = -1;
static long started, finished, total;

static size_t discard(char *data, size_t size, size_t nmemb, void *ud) {
  (void)data;
  (void)ud;
  return size * nmemb;
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *multi_ud, void *socket_ud) {
  (void)easy;
  (void)multi_ud;
  struct epoll_event ev = {.data.fd = fd};
  if (what == CURL_POLL_REMOVE) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
    curl_multi_assign(multi, fd, NULL);
    return 0;
  }
  ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
  if (socket_ud) {
    epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
  } else {
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    curl_multi_assign(multi, fd, &epfd);
  }
  return 0;
}

static int on_timer(CURLM *m, long ms, void *ud) {
  (void)m;
  (void)ud;
  timeout_ms = ms;
  return 0;
}

static void reap(void) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(multi, &left))) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL *easy = msg->easy_handle;
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    if (msg->data.result != CURLE_OK || status != 200) {
      fprintf(stderr, "libcurl_floor: transfer failed: %s, status %ld\n",
              curl_easy_strerror(msg->data.result), status);
      exit(1);
    }
    finished++;
    curl_multi_remove_handle(multi, easy);
    if (started < total) {
      started++;
      curl_multi_add_handle(multi, easy);
    } else {
      curl_easy_cleanup(easy);
    }
  }
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: libcurl_floor URL [requests] [in_flight]\n");
    return 2;
  }
  total = argc > 2 ? atol(argv[2]) : 20000;
  long in_flight = argc > 3 ? atol(argv[3]) : 100;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  multi = curl_multi_init();
  epfd = epoll_create1(EPOLL_CLOEXEC);
  curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_timer);
  double t0 = now();
  for (long i = 0; i < in_flight && started < total; i++) {
    CURL *easy = curl_easy_init();
    curl_easy_setopt(easy, CURLOPT_URL, argv[1]);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_PROXY, "");
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard);
    started++;
    curl_multi_add_handle(multi, easy);
  }
  int running = 1;
  struct epoll_event events[128];
  while (finished < total) {
    int n = epoll_wait(epfd, events, 128, (int)timeout_ms);
    if (n == 0 || timeout_ms == 0) {
      timeout_ms = -1;
      curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    for (int i = 0; i < n; i++) {
      int flags = (events[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
                  (events[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                  (events[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
      curl_multi_socket_action(multi, events[i].data.fd, flags, &running);
    }
    reap();
  }
  printf("%.0f\n", (double)total / (now() - t0));
  curl_multi_cleanup(multi);
  curl_global_cleanup();
  return 0;
}
