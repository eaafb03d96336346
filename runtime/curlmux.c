#include "curlmux.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

/* Transfers run on transport threads ("shards"), each with its own curl multi handle and event
 * loop; Lua and everything above this file stay on the main thread. One libcurl event loop tops
 * out well below what the machine can send (bench/README.md, "One thread against two"), and
 * libcurl's per-transfer work is most of a request's cost.
 *
 * What a single loop guaranteed holds per shard, because it is a property of the handle's options
 * (no write on a reused connection) or of one multi handle (HTTP/2 multiplexing, parked sockets),
 * and across shards by construction:
 * - an easy handle belongs to one thread at a time; it changes hands only through the queues
 *   below, under `lock`, so the request's set-up and the response buffers the write callbacks fill
 *   are seen whole by the next owner;
 * - sg_curlmux_remove returns only once the shard has detached the handle (or it never reached
 *   curl, or it already finished), so a cancelled handle is never reused while curl drives it;
 * - while a per-host limit is set, each host's transfers go to one shard (by a hash of what curl
 *   counts the limit against), whose multi handle enforces it exactly; without one they go to
 *   the least busy shard, and HTTP/2 to one host rides up to one connection per shard;
 * - no Lua runs off the main thread: completions wait in a queue for the main loop. */

enum transfer_state { QUEUED, RUNNING, FINISHED, CANCELLED };

struct shard;

struct sg_transfer {
  sg_curl_done_fn done;
  void *ud;
  CURL *easy;
  struct shard *shard;
  CURLcode result;
  enum transfer_state state; /* under lock */
  int cancel_seen;           /* under lock: the shard is done with it as a cancel */
  struct sg_transfer *next;     /* in the shard's inbox or in finished */
  struct sg_transfer *next_cancel;
};

struct list {
  struct sg_transfer *head, *tail;
};

struct shard {
  pthread_t thread;
  int started;
  sg_loop *loop; /* the shard's own; only its thread uses it while it runs */
  CURLM *multi;
  sg_timer *timer;
  /* By fd: 1 while it is a socket curl opened for a connection. Those are parked between
   * transfers; curl closes other sockets it watches (its threaded resolver's socketpair) without
   * calling close_socket, so a parked one of those could outlive its number. */
  unsigned char *connection;
  int connection_cap;
  int wake_fd;
  /* under lock */
  struct list inbox;
  struct sg_transfer *cancels;
  int wake_sent, stop;
  long host_limit, applied_host_limit;
  int outstanding; /* main thread only */
};

static struct {
  int nshards;
  struct shard shards[SG_CURLMUX_MAX_THREADS];
  pthread_mutex_t lock;
  pthread_cond_t detached;
  struct list finished; /* under lock */
  int finished_wake_sent;
  int finished_fd;
  sg_loop *loop; /* the main thread's */
  int outstanding;
  long host_limit;
  int next_shard;
} mux = {.lock = PTHREAD_MUTEX_INITIALIZER, .detached = PTHREAD_COND_INITIALIZER, .finished_fd = -1};

static void push(struct list *l, struct sg_transfer *tr) {
  tr->next = NULL;
  if (l->tail) l->tail->next = tr;
  else l->head = tr;
  l->tail = tr;
}

static struct sg_transfer *pop(struct list *l) {
  struct sg_transfer *tr = l->head;
  if (tr) {
    l->head = tr->next;
    if (!l->head) l->tail = NULL;
  }
  return tr;
}

static void unlink_from(struct list *l, struct sg_transfer *tr) {
  struct sg_transfer *prev = NULL;
  for (struct sg_transfer *t = l->head; t; prev = t, t = t->next) {
    if (t != tr) continue;
    if (prev) prev->next = t->next;
    else l->head = t->next;
    if (l->tail == t) l->tail = prev;
    return;
  }
}

static void wake(int fd) {
  uint64_t one = 1;
  ssize_t ignored = write(fd, &one, sizeof one);
  (void)ignored;
}

static void drain(int fd) {
  uint64_t n;
  ssize_t ignored = read(fd, &n, sizeof n);
  (void)ignored;
}

/* ---- the shard's side ---- */

static int is_connection(struct shard *s, int fd) { return fd >= 0 && fd < s->connection_cap && s->connection[fd]; }

static int mark_connection(struct shard *s, int fd, unsigned char on) {
  if (fd < 0) return 0;
  if (fd >= s->connection_cap) {
    if (!on) return 0;
    int cap = s->connection_cap ? s->connection_cap : 64;
    while (cap <= fd) cap *= 2;
    unsigned char *p = realloc(s->connection, (size_t)cap);
    if (!p) return -1;
    memset(p + s->connection_cap, 0, (size_t)(cap - s->connection_cap));
    s->connection = p;
    s->connection_cap = cap;
  }
  s->connection[fd] = on;
  return 0;
}

/* Hands a transfer that ended (or never started) to the main thread. */
static void finish(struct sg_transfer *tr, CURLcode result) {
  pthread_mutex_lock(&mux.lock);
  tr->result = result;
  tr->state = FINISHED;
  push(&mux.finished, tr);
  int send = !mux.finished_wake_sent;
  mux.finished_wake_sent = 1;
  pthread_mutex_unlock(&mux.lock);
  if (send) wake(mux.finished_fd);
}

static void check_done(struct shard *s) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(s->multi, &left))) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL *easy = msg->easy_handle;
    CURLcode result = msg->data.result;
    struct sg_transfer *tr = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&tr);
    curl_multi_remove_handle(s->multi, easy);
    finish(tr, result);
  }
}

static void on_socket_ready(void *ud, int fd, int events) {
  struct shard *s = ud;
  int flags = (events & SG_READ ? CURL_CSELECT_IN : 0) | (events & SG_WRITE ? CURL_CSELECT_OUT : 0);
  int running;
  curl_multi_socket_action(s->multi, fd, flags, &running);
  check_done(s);
}

static void on_timeout(void *ud) {
  struct shard *s = ud;
  s->timer = NULL;
  int running;
  curl_multi_socket_action(s->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done(s);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  (void)easy;
  (void)socketp;
  struct shard *s = userp;
  int events = 0;
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) events |= SG_READ;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) events |= SG_WRITE;
  /* curl removes a kept-alive connection's socket after every transfer and adds it back for the
   * next one: parking it makes that one epoll_ctl call per request instead of two. */
  if (what == CURL_POLL_REMOVE && is_connection(s, fd))
    sg_loop_park(s->loop, fd);
  else
    sg_loop_watch(s->loop, fd, what == CURL_POLL_REMOVE ? 0 : events, on_socket_ready, s);
  return 0;
}

/* Every socket curl opens for a connection is made here and, as a rule, closed in close_socket,
 * which unregisters it (the few curl closes on its own are re-registered under their number when
 * it comes back, see sg_loop_park). Close-on-exec: a program a playbook starts inherits none. curl
 * keeps the clientp of the handle that opened a connection with the connection, so the shard
 * whose multi handle caches it is the one that closes it. */
static curl_socket_t open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *address) {
  (void)purpose;
  struct shard *s = clientp;
  int fd = socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
  if (fd >= 0 && mark_connection(s, fd, 1) != 0) {
    close(fd);
    return CURL_SOCKET_BAD;
  }
  return fd < 0 ? CURL_SOCKET_BAD : fd;
}

static int close_socket(void *clientp, curl_socket_t fd) {
  struct shard *s = clientp;
  mark_connection(s, fd, 0);
  sg_loop_watch(s->loop, fd, 0, NULL, NULL);
  return close(fd);
}

/* curl asks for one timer; 0 ms means "soon", which we run on the next loop turn rather than
 * calling back into curl from here. */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp) {
  (void)multi;
  struct shard *s = userp;
  if (s->timer) {
    sg_timer_stop(s->loop, s->timer);
    s->timer = NULL;
  }
  if (timeout_ms >= 0) s->timer = sg_timer_start(s->loop, (double)timeout_ms / 1000.0, on_timeout, s);
  return 0;
}

/* Takes what the main thread sent: the host limit first, so that new transfers obey it. */
static void on_wake(void *ud, int fd, int events) {
  (void)events;
  struct shard *s = ud;
  drain(fd);
  pthread_mutex_lock(&mux.lock);
  s->wake_sent = 0;
  struct list inbox = s->inbox;
  struct sg_transfer *cancels = s->cancels;
  s->inbox = (struct list){0};
  s->cancels = NULL;
  long limit = s->host_limit;
  for (struct sg_transfer *tr = inbox.head; tr; tr = tr->next) tr->state = RUNNING;
  pthread_mutex_unlock(&mux.lock);
  if (limit != s->applied_host_limit) {
    curl_multi_setopt(s->multi, CURLMOPT_MAX_HOST_CONNECTIONS, limit);
    s->applied_host_limit = limit;
  }
  /* Only this thread finishes this shard's transfers, so one still RUNNING here is still in the
   * multi handle; one that finished after its cancel was sent is the main thread's to collect.
   * The canceller frees the transfer once it is seen, so it is not touched after. */
  while (cancels) {
    struct sg_transfer *tr = cancels;
    cancels = tr->next_cancel;
    pthread_mutex_lock(&mux.lock);
    int running = tr->state == RUNNING;
    pthread_mutex_unlock(&mux.lock);
    if (running) curl_multi_remove_handle(s->multi, tr->easy);
    pthread_mutex_lock(&mux.lock);
    if (running) tr->state = CANCELLED;
    tr->cancel_seen = 1;
    pthread_cond_broadcast(&mux.detached);
    pthread_mutex_unlock(&mux.lock);
  }
  struct sg_transfer *tr;
  while ((tr = pop(&inbox))) {
    if (curl_multi_add_handle(s->multi, tr->easy) != CURLM_OK) finish(tr, CURLE_FAILED_INIT);
  }
  check_done(s);
}

static void *shard_main(void *arg) {
  struct shard *s = arg;
  for (;;) {
    pthread_mutex_lock(&mux.lock);
    int stop = s->stop;
    pthread_mutex_unlock(&mux.lock);
    if (stop) break;
    sg_loop_run_once(s->loop, -1);
  }
  return NULL;
}

/* ---- the main thread's side ---- */

/* Runs each finished transfer's callback, one at a time: a callback may remove another one. */
static void on_finished(void *ud, int fd, int events) {
  (void)ud;
  (void)events;
  drain(fd);
  for (;;) {
    pthread_mutex_lock(&mux.lock);
    mux.finished_wake_sent = 0;
    struct sg_transfer *tr = pop(&mux.finished);
    pthread_mutex_unlock(&mux.lock);
    if (!tr) break;
    tr->shard->outstanding--;
    mux.outstanding--;
    sg_curl_done_fn done = tr->done;
    void *done_ud = tr->ud;
    CURLcode result = tr->result;
    free(tr);
    done(done_ud, result);
  }
  /* nothing in flight: the loop must not count this fd as something that can still wake it */
  if (!mux.outstanding) sg_loop_park(mux.loop, mux.finished_fd);
}

/* Also run at exit: exit() from a playbook may come with transfers in flight, and the shards
 * stop before OpenSSL's own exit handler (registered earlier, so run later) frees what they may
 * be using. */
static void stop_shards(void) {
  pthread_mutex_lock(&mux.lock);
  for (int i = 0; i < mux.nshards; i++) mux.shards[i].stop = 1;
  pthread_mutex_unlock(&mux.lock);
  for (int i = 0; i < mux.nshards; i++) {
    struct shard *s = &mux.shards[i];
    if (!s->started) continue;
    wake(s->wake_fd);
    pthread_join(s->thread, NULL);
    s->started = 0;
  }
}

static void free_shard(struct shard *s) {
  if (s->timer) sg_timer_stop(s->loop, s->timer);
  s->timer = NULL;
  if (s->multi) curl_multi_cleanup(s->multi); /* closes its connections through close_socket */
  s->multi = NULL;
  if (s->wake_fd >= 0) close(s->wake_fd);
  sg_loop_free(s->loop);
  free(s->connection);
  memset(s, 0, sizeof *s);
  s->wake_fd = -1;
}

static int init_shard(struct shard *s) {
  memset(s, 0, sizeof *s);
  s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  s->loop = sg_loop_new();
  s->multi = curl_multi_init();
  if (s->wake_fd < 0 || !s->loop || !s->multi) return -1;
  if (sg_loop_watch(s->loop, s->wake_fd, SG_READ, on_wake, s) != 0) return -1;
  curl_multi_setopt(s->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
  curl_multi_setopt(s->multi, CURLMOPT_SOCKETDATA, s);
  curl_multi_setopt(s->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
  curl_multi_setopt(s->multi, CURLMOPT_TIMERDATA, s);
  curl_multi_setopt(s->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  /* keep enough idle connections for a wide fan-out to reuse them on the next round */
  curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, 1024L);
  /* signals are the main thread's: its loop's self-pipe is what wakes a roll-out to stop */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&s->thread, NULL, shard_main, s);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) return -1;
  s->started = 1;
  return 0;
}

void sg_curlmux_cleanup(void) {
  if (!mux.nshards) return;
  stop_shards();
  for (int i = 0; i < mux.nshards; i++) free_shard(&mux.shards[i]);
  mux.nshards = 0;
  /* transfers that finished but were never collected (their callers are gone with the state) */
  struct sg_transfer *tr;
  while ((tr = pop(&mux.finished))) free(tr);
  mux.finished_wake_sent = 0;
  if (mux.finished_fd >= 0) {
    sg_loop_watch(mux.loop, mux.finished_fd, 0, NULL, NULL);
    close(mux.finished_fd);
  }
  mux.finished_fd = -1;
  mux.outstanding = 0;
  mux.host_limit = 0;
  curl_global_cleanup();
}

int sg_curlmux_default_threads(void) {
  /* two was the most the benchmarks gained from on two cores; more threads only take turns */
  return sysconf(_SC_NPROCESSORS_ONLN) >= 2 ? 2 : 1;
}

int sg_curlmux_init(sg_loop *loop, int threads) {
  if (mux.nshards) return 0;
  if (threads < 1 || threads > SG_CURLMUX_MAX_THREADS) return -1;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return -1;
  static int at_exit_registered;
  if (!at_exit_registered) at_exit_registered = atexit(stop_shards) == 0;
  mux.loop = loop;
  mux.finished_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  for (int i = 0; i < threads; i++) mux.shards[i].wake_fd = -1;
  mux.nshards = threads;
  int ok = mux.finished_fd >= 0;
  for (int i = 0; ok && i < threads; i++) ok = init_shard(&mux.shards[i]) == 0;
  if (!ok) {
    sg_curlmux_cleanup();
    return -1;
  }
  return 0;
}

int sg_curlmux_threads(void) { return mux.nshards; }

static uint64_t hash_lower(const char *s, uint64_t h) {
  for (; *s; s++) h = (h ^ (unsigned char)tolower((unsigned char)*s)) * 1099511628211u; /* FNV-1a */
  return h;
}

/* What libcurl counts a per-host limit against, hashed: the proxy when one is set (every
 * connection through it counts against it; hosts that no_proxy sends around it are kept
 * together with it, which is stricter, never looser), else the host name in any case and the
 * port, the scheme's default when the URL gives none; no scheme, no user name. A URL curl cannot
 * parse is hashed whole: its transfer fails on any shard. */
static uint64_t limit_key_hash(const char *url, const char *proxy) {
  uint64_t h = 14695981039346656037u;
  if (proxy && *proxy) {
    h = hash_lower(proxy, h);
  } else {
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
      h = hash_lower(port, hash_lower(":", hash_lower(host, h)));
    else
      h = hash_lower(url, h);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
  }
  /* FNV's low bits depend only on the low bits of each byte: take the well-mixed high ones */
  return (h * 0x9E3779B97F4A7C15u) >> 32;
}

/* With a per-host limit, the host's own shard; without, the one with the fewest transfers (ties go
 * round the shards). */
static struct shard *pick_shard(const char *url, const char *proxy) {
  if (mux.host_limit) return &mux.shards[limit_key_hash(url, proxy) % (uint64_t)mux.nshards];
  struct shard *best = NULL;
  for (int k = 0; k < mux.nshards; k++) {
    struct shard *s = &mux.shards[(mux.next_shard + k) % mux.nshards];
    if (!best || s->outstanding < best->outstanding) best = s;
  }
  mux.next_shard = (mux.next_shard + 1) % mux.nshards;
  return best;
}

sg_transfer *sg_curlmux_add(CURL *easy, const char *url, const char *proxy, sg_curl_done_fn done, void *ud) {
  struct sg_transfer *tr = malloc(sizeof *tr);
  if (!tr) return NULL;
  /* before the first transfer is queued, so its completion cannot find the fd parked */
  if (!mux.outstanding && sg_loop_watch(mux.loop, mux.finished_fd, SG_READ, on_finished, NULL) != 0) {
    free(tr);
    return NULL;
  }
  struct shard *s = pick_shard(url, proxy);
  *tr = (struct sg_transfer){.done = done, .ud = ud, .easy = easy, .shard = s, .state = QUEUED};
  curl_easy_setopt(easy, CURLOPT_PRIVATE, tr);
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, open_socket);
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, s);
  curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, close_socket);
  curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, s);
  s->outstanding++;
  mux.outstanding++;
  pthread_mutex_lock(&mux.lock);
  push(&s->inbox, tr);
  int send = !s->wake_sent;
  s->wake_sent = 1;
  pthread_mutex_unlock(&mux.lock);
  if (send) wake(s->wake_fd);
  return tr;
}

void sg_curlmux_set_host_limit(long n) {
  if (!mux.nshards || n == mux.host_limit) return;
  mux.host_limit = n;
  pthread_mutex_lock(&mux.lock);
  for (int i = 0; i < mux.nshards; i++) {
    struct shard *s = &mux.shards[i];
    s->host_limit = n;
    if (!s->wake_sent) {
      s->wake_sent = 1;
      wake(s->wake_fd);
    }
  }
  pthread_mutex_unlock(&mux.lock);
}

void sg_curlmux_remove(sg_transfer *tr) {
  struct shard *s = tr->shard;
  pthread_mutex_lock(&mux.lock);
  if (tr->state == QUEUED) {
    unlink_from(&s->inbox, tr);
  } else if (tr->state == RUNNING && s->stop) {
    curl_multi_remove_handle(s->multi, tr->easy); /* after exit() stopped the shards: no one else drives it */
  } else if (tr->state == RUNNING) {
    tr->next_cancel = s->cancels;
    s->cancels = tr;
    if (!s->wake_sent) {
      s->wake_sent = 1;
      wake(s->wake_fd);
    }
    while (!tr->cancel_seen) pthread_cond_wait(&mux.detached, &mux.lock);
  }
  if (tr->state == FINISHED) unlink_from(&mux.finished, tr);
  pthread_mutex_unlock(&mux.lock);
  s->outstanding--;
  mux.outstanding--;
  free(tr);
  if (!mux.outstanding) sg_loop_park(mux.loop, mux.finished_fd);
}
