/* The transport threads (runtime/curlmux.c), white-box: the file is included so that a test can
 * hold a transfer in each state (queued for a thread, running in its multi handle, finished and
 * waiting for the main loop) and cancel it there. A cancel must leave the handle free to reuse at
 * once and its callback never run; the main loop must count nothing pending once every transfer
 * is over (the scheduler calls that a deadlock); exit() with transfers in flight must not crash.
 * The server is a thread of this test on 127.0.0.1 that holds each response until told. */
#include "../../runtime/curlmux.c"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/wait.h>

#include "check.h"

static struct {
  int listen_fd, port;
  pthread_mutex_t lock;
  pthread_cond_t changed;
  int requests; /* received so far */
  int released; /* responses it may send so far */
  int connections;
} server = {.lock = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER};
static char server_url[64];

static void *serve_connection(void *arg) {
  int fd = (int)(intptr_t)arg;
  char buf[4096];
  size_t have = 0;
  for (;;) {
    ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
    if (n <= 0) break;
    have += (size_t)n;
    buf[have] = 0;
    char *end = strstr(buf, "\r\n\r\n");
    if (!end) continue;
    have = 0;
    pthread_mutex_lock(&server.lock);
    int mine = ++server.requests;
    pthread_cond_broadcast(&server.changed);
    while (server.released < mine) pthread_cond_wait(&server.changed, &server.lock);
    pthread_mutex_unlock(&server.lock);
    static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    if (write(fd, reply, sizeof reply - 1) < 0) break;
  }
  close(fd);
  return NULL;
}

static void *accept_loop(void *arg) {
  (void)arg;
  for (;;) {
    int fd = accept(server.listen_fd, NULL, NULL);
    if (fd < 0) return NULL;
    pthread_mutex_lock(&server.lock);
    server.connections++;
    pthread_mutex_unlock(&server.lock);
    pthread_t t;
    pthread_create(&t, NULL, serve_connection, (void *)(intptr_t)fd);
    pthread_detach(t);
  }
}

static void start_server(void) {
  server.listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (bind(server.listen_fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(server.listen_fd, 64) != 0 ||
      getsockname(server.listen_fd, (struct sockaddr *)&a, &len) != 0) {
    perror("test server");
    exit(1);
  }
  server.port = ntohs(a.sin_port);
  snprintf(server_url, sizeof server_url, "http://127.0.0.1:%d/", server.port);
  pthread_t t;
  pthread_create(&t, NULL, accept_loop, NULL);
  pthread_detach(t);
}

static int requests_so_far(void) {
  pthread_mutex_lock(&server.lock);
  int n = server.requests;
  pthread_mutex_unlock(&server.lock);
  return n;
}

static void release_responses(int upto) {
  pthread_mutex_lock(&server.lock);
  server.released = upto;
  pthread_cond_broadcast(&server.changed);
  pthread_mutex_unlock(&server.lock);
}

static void wait_requests(int n) {
  pthread_mutex_lock(&server.lock);
  while (server.requests < n) pthread_cond_wait(&server.changed, &server.lock);
  pthread_mutex_unlock(&server.lock);
}

struct call {
  int done;
  CURLcode result;
  char body[16];
  size_t len;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud) {
  struct call *c = ud;
  size_t n = size * nmemb;
  if (c->len + n < sizeof c->body) memcpy(c->body + c->len, data, n);
  c->len += n;
  return n;
}

static void on_done(void *ud, CURLcode result) {
  struct call *c = ud;
  c->done++;
  c->result = result;
}

static CURL *new_easy(struct call *c) {
  CURL *e = curl_easy_init();
  curl_easy_setopt(e, CURLOPT_URL, server_url);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROXY, "");
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
  return e;
}

static sg_transfer *start(CURL *e, struct call *c) {
  curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
  sg_transfer *tr = sg_curlmux_add(e, server_url, NULL, on_done, c);
  CHECK(tr != NULL);
  return tr;
}

static enum transfer_state state_of(sg_transfer *tr) {
  pthread_mutex_lock(&mux.lock);
  enum transfer_state s = tr->state;
  pthread_mutex_unlock(&mux.lock);
  return s;
}

/* Waits for a state the test cannot step to itself: the shard thread moves there on its own. */
static void wait_state(sg_transfer *tr, enum transfer_state want) {
  while (state_of(tr) != want) usleep(1000);
}

static void run_until_done(sg_loop *loop, struct call *c) {
  while (!c->done) sg_loop_run_once(loop, -1);
}

static int nothing_left(sg_loop *loop) { return mux.outstanding == 0 && sg_loop_pending(loop) == 0; }

static void test_a_transfer_completes_on_the_main_loop(sg_loop *loop) {
  struct call c = {0};
  CURL *e = new_easy(&c);
  release_responses(requests_so_far() + 1);
  start(e, &c);
  CHECK(sg_loop_pending(loop) > 0);
  run_until_done(loop, &c);
  CHECK(c.done == 1 && c.result == CURLE_OK && c.len == 2 && memcmp(c.body, "ok", 2) == 0);
  CHECK(nothing_left(loop)); /* the completion fd is parked: nothing left to wait for */
  curl_easy_cleanup(e);
}

static void test_cancel_while_running(sg_loop *loop) {
  struct call c = {0};
  CURL *e = new_easy(&c);
  int base = requests_so_far();
  sg_transfer *tr = start(e, &c);
  wait_requests(base + 1); /* the server holds the response: the transfer is in the multi handle */
  CHECK(state_of(tr) == RUNNING);
  sg_curlmux_remove(tr);
  CHECK(nothing_left(loop));
  release_responses(base + 2);
  /* the same handle at once, for a new transfer */
  struct call again = {0};
  start(e, &again);
  run_until_done(loop, &again);
  CHECK(again.done == 1 && again.result == CURLE_OK && again.len == 2);
  CHECK(c.done == 0);
  curl_easy_cleanup(e);
}

static void test_cancel_after_it_finished(sg_loop *loop) {
  struct call c = {0};
  CURL *e = new_easy(&c);
  release_responses(requests_so_far() + 1);
  sg_transfer *tr = start(e, &c);
  wait_state(tr, FINISHED); /* done on its thread, not yet seen by the main loop */
  sg_curlmux_remove(tr);
  pthread_mutex_lock(&mux.lock);
  CHECK(mux.finished.head == NULL);
  pthread_mutex_unlock(&mux.lock);
  sg_loop_run_once(loop, 0); /* the completion's wake-up finds nothing to deliver */
  CHECK(c.done == 0);
  CHECK(nothing_left(loop));
  curl_easy_cleanup(e);
}

static void test_cancel_before_a_thread_took_it(sg_loop *loop) {
  struct call c = {0};
  CURL *e = new_easy(&c);
  int base = requests_so_far();
  /* the threads are not woken while this says they were: the transfer stays queued */
  pthread_mutex_lock(&mux.lock);
  for (int i = 0; i < mux.nshards; i++) mux.shards[i].wake_sent = 1;
  pthread_mutex_unlock(&mux.lock);
  sg_transfer *tr = start(e, &c);
  CHECK(state_of(tr) == QUEUED);
  sg_curlmux_remove(tr);
  pthread_mutex_lock(&mux.lock);
  for (int i = 0; i < mux.nshards; i++) {
    CHECK(mux.shards[i].inbox.head == NULL);
    mux.shards[i].wake_sent = 0;
  }
  pthread_mutex_unlock(&mux.lock);
  CHECK(nothing_left(loop));
  /* and nothing reached the server: the next request is the next one it sees */
  struct call next = {0};
  release_responses(base + 1);
  start(e, &next);
  run_until_done(loop, &next);
  CHECK(next.done == 1 && next.result == CURLE_OK && requests_so_far() == base + 1);
  CHECK(c.done == 0);
  curl_easy_cleanup(e);
}

/* Many transfers, spread over the threads, half of them cancelled while the server holds them. */
static void test_a_burst_spreads_and_cancels_cleanly(sg_loop *loop) {
  enum { N = 64 };
  static struct call calls[N];
  CURL *easy[N];
  sg_transfer *tr[N];
  int base = requests_so_far();
  int used[SG_CURLMUX_MAX_THREADS] = {0};
  for (int i = 0; i < N; i++) {
    memset(&calls[i], 0, sizeof calls[i]);
    easy[i] = new_easy(&calls[i]);
    tr[i] = start(easy[i], &calls[i]);
    used[tr[i]->shard - mux.shards]++;
  }
  for (int s = 0; s < mux.nshards; s++) CHECK(used[s] == N / mux.nshards || used[s] == N / mux.nshards + 1);
  wait_requests(base + N);
  for (int i = 0; i < N; i += 2) sg_curlmux_remove(tr[i]);
  release_responses(base + N);
  for (int i = 1; i < N; i += 2) run_until_done(loop, &calls[i]);
  for (int i = 0; i < N; i++) {
    CHECK(calls[i].done == (i % 2));
    if (i % 2) CHECK(calls[i].result == CURLE_OK && calls[i].len == 2);
    curl_easy_cleanup(easy[i]);
  }
  CHECK(nothing_left(loop));
}

/* With a per-host limit a host's transfers all go to one thread, whose multi handle keeps it. */
static void test_a_host_limit_keeps_a_host_on_one_thread(sg_loop *loop) {
  sg_curlmux_set_host_limit(1);
  struct shard *home = pick_shard(server_url, NULL);
  char other[128];
  /* one host to curl, however the URL spells it */
  snprintf(other, sizeof other, "%sother?x=1", server_url);
  CHECK(pick_shard(other, NULL) == home);
  snprintf(other, sizeof other, "HTTP://someone@127.0.0.1:%d/x", server.port);
  CHECK(pick_shard(other, NULL) == home);
  CHECK(pick_shard("http://h.test/", NULL) == pick_shard("http://H.TEST:80/a", NULL));
  CHECK(pick_shard("https://h.test/", NULL) == pick_shard("https://h.test:443/", NULL));
  /* through a proxy every host counts against the proxy */
  CHECK(pick_shard("http://a.test/", "http://proxy:3128") == pick_shard("http://b.test/", "http://proxy:3128"));
  /* and hosts spread over the threads: node1..node8 do not all share one */
  int on_home = 0;
  for (int i = 1; i <= 8; i++) {
    snprintf(other, sizeof other, "https://node%d.test/", i);
    on_home += pick_shard(other, NULL) == home;
  }
  CHECK(on_home > 0 && on_home < 8);
  enum { N = 16 };
  static struct call calls[N];
  CURL *easy[N];
  release_responses(requests_so_far() + N);
  int connections_before = server.connections;
  for (int i = 0; i < N; i++) {
    memset(&calls[i], 0, sizeof calls[i]);
    easy[i] = new_easy(&calls[i]);
    CHECK(start(easy[i], &calls[i])->shard == home);
  }
  for (int i = 0; i < N; i++) run_until_done(loop, &calls[i]);
  for (int i = 0; i < N; i++) {
    CHECK(calls[i].result == CURLE_OK);
    curl_easy_cleanup(easy[i]);
  }
  pthread_mutex_lock(&server.lock);
  CHECK(server.connections - connections_before <= 1);
  pthread_mutex_unlock(&server.lock);
  sg_curlmux_set_host_limit(0);
  CHECK(nothing_left(loop));
}

/* exit() from a playbook with transfers in flight: the threads are stopped and joined first.
 * The child is this program run afresh (a forked copy of a threaded process may not start
 * threads of its own under ThreadSanitizer); this process's server holds its responses. */
static int exit_with_transfers_in_flight(const char *url) {
  snprintf(server_url, sizeof server_url, "%s", url);
  sg_loop *loop = sg_loop_new();
  if (sg_curlmux_init(loop, 2) != 0) return 3;
  static struct call calls[8];
  sg_transfer *tr[8];
  for (int i = 0; i < 8; i++) tr[i] = start(new_easy(&calls[i]), &calls[i]);
  for (int i = 0; i < 8; i++) wait_state(tr[i], RUNNING);
  exit(7);
}

static void test_exit_with_transfers_in_flight(void) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    execl("/proc/self/exe", "test_curlmux", "--exit-with-transfers", server_url, (char *)NULL);
    _exit(127);
  }
  int status = 0;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 7);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--exit-with-transfers") == 0) return exit_with_transfers_in_flight(argv[2]);
  start_server();
  sg_loop *loop = sg_loop_new();
  CHECK(sg_curlmux_init(loop, 2) == 0);
  CHECK(sg_loop_pending(loop) == 0);
  test_a_transfer_completes_on_the_main_loop(loop);
  test_cancel_while_running(loop);
  test_cancel_after_it_finished(loop);
  test_cancel_before_a_thread_took_it(loop);
  test_a_burst_spreads_and_cancels_cleanly(loop);
  test_a_host_limit_keeps_a_host_on_one_thread(loop);
  sg_curlmux_cleanup();
  CHECK(sg_curlmux_init(loop, SG_CURLMUX_MAX_THREADS + 1) != 0);
  CHECK(sg_curlmux_init(loop, 3) == 0); /* again after a cleanup, with a count that does not divide */
  test_a_transfer_completes_on_the_main_loop(loop);
  test_a_burst_spreads_and_cancels_cleanly(loop);
  test_a_host_limit_keeps_a_host_on_one_thread(loop);
  sg_curlmux_cleanup();
  test_exit_with_transfers_in_flight();
  sg_loop_free(loop);
  return check_report();
}
