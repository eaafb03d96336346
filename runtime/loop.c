#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

struct sg_timer {
  double due;
  unsigned long seq; /* keeps timers with the same due time in start order */
  int index;         /* position in the heap */
  sg_timer_fn fn;
  void *ud;
};

struct watch {
  int fd;
  int events; /* as registered with epoll */
  int parked; /* registered, but its events are not wanted now */
  sg_fd_fn fn;
  void *ud;
};

struct sg_loop {
  int epfd;
  sg_timer **heap;
  int nheap, capheap;
  unsigned long seq;
  struct watch **watches; /* indexed by fd */
  int capwatches;
  int nwatches;
  int sigpipe[2];
};

static volatile sig_atomic_t last_signal;
/* never cleared: whether and which signal came, after a handler took last_signal */
static volatile sig_atomic_t signal_count, latest_signal;
static int signal_write_fd = -1;
static void (*signal_hook)(int);

double sg_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

sg_loop *sg_loop_new(void) {
  sg_loop *loop = calloc(1, sizeof *loop);
  if (!loop) return NULL;
  loop->epfd = epoll_create1(EPOLL_CLOEXEC);
  loop->sigpipe[0] = loop->sigpipe[1] = -1;
  if (loop->epfd < 0) {
    free(loop);
    return NULL;
  }
  return loop;
}

static sg_loop *default_loop;

sg_loop *sg_loop_default(void) {
  if (!default_loop) default_loop = sg_loop_new();
  return default_loop;
}

void sg_loop_free(sg_loop *loop) {
  if (!loop) return;
  for (int i = 0; i < loop->nheap; i++) free(loop->heap[i]);
  free(loop->heap);
  for (int i = 0; i < loop->capwatches; i++) free(loop->watches[i]);
  free(loop->watches);
  if (loop->sigpipe[0] >= 0) {
    if (signal_write_fd == loop->sigpipe[1]) signal_write_fd = -1;
    close(loop->sigpipe[0]);
    close(loop->sigpipe[1]);
  }
  close(loop->epfd);
  if (loop == default_loop) default_loop = NULL;
  free(loop);
}

static int to_epoll(int events) {
  return (events & SG_READ ? EPOLLIN : 0) | (events & SG_WRITE ? EPOLLOUT : 0);
}

static void unwatch(sg_loop *loop, struct watch *w) {
  epoll_ctl(loop->epfd, EPOLL_CTL_DEL, w->fd, NULL); /* fd may already be closed: ignore */
  if (!w->parked) loop->nwatches--;
  loop->watches[w->fd] = NULL;
  free(w);
}

int sg_loop_watch(sg_loop *loop, int fd, int events, sg_fd_fn fn, void *ud) {
  if (fd < 0) return -EBADF;
  if (fd >= loop->capwatches) {
    if (!events) return 0;
    int cap = loop->capwatches ? loop->capwatches : 64;
    while (cap <= fd) cap *= 2;
    struct watch **w = realloc(loop->watches, (size_t)cap * sizeof *w);
    if (!w) return -ENOMEM;
    memset(w + loop->capwatches, 0, (size_t)(cap - loop->capwatches) * sizeof *w);
    loop->watches = w;
    loop->capwatches = cap;
  }
  struct watch *w = loop->watches[fd];
  if (!events) {
    if (w) unwatch(loop, w);
    return 0;
  }
  struct epoll_event ev = {.events = (uint32_t)to_epoll(events), .data.fd = fd};
  if (!w) {
    w = calloc(1, sizeof *w);
    if (!w) return -ENOMEM;
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
      int err = errno;
      free(w);
      return -err;
    }
    loop->watches[fd] = w;
    loop->nwatches++;
  } else {
    /* ENOENT: the fd was closed and its number reused without a word to the loop; the new file
     * gets a registration of its own. A parked fd is always told to the kernel again: curl
     * closes some sockets without telling, and a new file under the old number with the same
     * events would otherwise never be registered. */
    if ((w->events != events || w->parked) && epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 &&
        (errno != ENOENT || epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0))
      return -errno;
    if (w->parked) loop->nwatches++;
  }
  w->fd = fd;
  w->events = events;
  w->parked = 0;
  w->fn = fn;
  w->ud = ud;
  return 0;
}

void sg_loop_park(sg_loop *loop, int fd) {
  struct watch *w = fd >= 0 && fd < loop->capwatches ? loop->watches[fd] : NULL;
  if (!w || w->parked) return;
  w->parked = 1;
  loop->nwatches--;
}

static int timer_before(const sg_timer *a, const sg_timer *b) {
  return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void heap_set(sg_loop *loop, int i, sg_timer *t) {
  loop->heap[i] = t;
  t->index = i;
}

static void heap_up(sg_loop *loop, int i) {
  sg_timer *t = loop->heap[i];
  while (i > 0) {
    int parent = (i - 1) / 2;
    if (!timer_before(t, loop->heap[parent])) break;
    heap_set(loop, i, loop->heap[parent]);
    i = parent;
  }
  heap_set(loop, i, t);
}

static void heap_down(sg_loop *loop, int i) {
  sg_timer *t = loop->heap[i];
  for (;;) {
    int child = 2 * i + 1;
    if (child >= loop->nheap) break;
    if (child + 1 < loop->nheap && timer_before(loop->heap[child + 1], loop->heap[child])) child++;
    if (!timer_before(loop->heap[child], t)) break;
    heap_set(loop, i, loop->heap[child]);
    i = child;
  }
  heap_set(loop, i, t);
}

sg_timer *sg_timer_start(sg_loop *loop, double delay, sg_timer_fn fn, void *ud) {
  if (loop->nheap == loop->capheap) {
    int cap = loop->capheap ? loop->capheap * 2 : 64;
    sg_timer **h = realloc(loop->heap, (size_t)cap * sizeof *h);
    if (!h) return NULL;
    loop->heap = h;
    loop->capheap = cap;
  }
  sg_timer *t = malloc(sizeof *t);
  if (!t) return NULL;
  t->due = sg_now() + (delay > 0 ? delay : 0);
  t->seq = loop->seq++;
  t->fn = fn;
  t->ud = ud;
  heap_set(loop, loop->nheap++, t);
  heap_up(loop, t->index);
  return t;
}

static void heap_remove(sg_loop *loop, sg_timer *t) {
  int i = t->index;
  sg_timer *last = loop->heap[--loop->nheap];
  if (last != t) {
    heap_set(loop, i, last);
    heap_up(loop, i);
    heap_down(loop, last->index);
  }
}

void sg_timer_stop(sg_loop *loop, sg_timer *t) {
  if (!t) return;
  heap_remove(loop, t);
  free(t);
}

int sg_loop_pending(const sg_loop *loop) { return loop->nheap + loop->nwatches; }

static int run_due_timers(sg_loop *loop) {
  int ran = 0;
  double now = sg_now();
  /* Only timers due now: a callback that starts a 0-delay timer gets it on the next turn. */
  unsigned long seq_limit = loop->seq;
  while (loop->nheap && loop->heap[0]->due <= now && loop->heap[0]->seq < seq_limit) {
    sg_timer *t = loop->heap[0];
    heap_remove(loop, t);
    sg_timer_fn fn = t->fn;
    void *ud = t->ud;
    free(t);
    fn(ud);
    ran++;
  }
  return ran;
}

int sg_loop_wait_ms(double seconds) {
  if (seconds < 0) return -1;
  if (seconds > SG_LOOP_LONGEST_WAIT) seconds = SG_LOOP_LONGEST_WAIT;
  double ms = seconds * 1000.0;
  int whole = (int)ms;
  return whole < ms ? whole + 1 : whole;
}

int sg_loop_run_once(sg_loop *loop, double max_wait) {
  double wait = max_wait;
  if (loop->nheap) {
    wait = loop->heap[0]->due - sg_now();
    if (wait < 0) wait = 0;
    if (max_wait >= 0 && max_wait < wait) wait = max_wait;
  }
  int timeout_ms = sg_loop_wait_ms(wait);
  struct epoll_event evs[256];
  int n = epoll_wait(loop->epfd, evs, 256, timeout_ms);
  int ran = 0;
  for (int i = 0; i < n; i++) {
    int fd = evs[i].data.fd;
    if (fd == loop->sigpipe[0]) {
      char buf[64];
      while (read(fd, buf, sizeof buf) > 0) {
      }
      ran++;
      continue;
    }
    /* A callback may stop watching another fd of this batch: look it up again each time. */
    struct watch *w = fd < loop->capwatches ? loop->watches[fd] : NULL;
    if (!w) continue;
    if (w->parked) { /* e.g. the peer closed an idle connection: nobody wants to hear of it now */
      unwatch(loop, w);
      continue;
    }
    int events = 0;
    if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) events |= SG_READ;
    if (evs[i].events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) events |= SG_WRITE;
    w->fn(w->ud, fd, events & (w->events | (evs[i].events & (EPOLLHUP | EPOLLERR) ? 3 : 0)));
    ran++;
  }
  return ran + run_due_timers(loop);
}

static void on_signal(int sig) {
  /* a hangup (the SSH session or terminal closed) is a request to stop, as SIGTERM is: a
   * roll-out restores what it started instead of dying mid-write */
  if (sig == SIGHUP) sig = SIGTERM;
  last_signal = sig;
  latest_signal = sig;
  signal_count++;
  int saved = errno;
  if (signal_hook) signal_hook(sig);
  if (signal_write_fd >= 0) {
    ssize_t ignored = write(signal_write_fd, "", 1);
    (void)ignored;
  }
  errno = saved;
}

void sg_loop_catch_signals(sg_loop *loop, void (*in_handler)(int sig)) {
  signal_hook = in_handler;
  /* Without the self-pipe (no descriptor left) signals are still caught, and one that comes
   * while the loop waits ends the wait (EINTR); only one landing just before a wait is seen late,
   * at the next wake-up. Better than a Ctrl-C that kills a roll-out mid-write. */
  int p[2];
  if (loop->sigpipe[0] < 0 && pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0) {
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = p[0]};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, p[0], &ev) == 0) {
      loop->sigpipe[0] = p[0];
      loop->sigpipe[1] = p[1];
    } else {
      close(p[0]);
      close(p[1]);
    }
  }
  signal_write_fd = loop->sigpipe[1];
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  /* one handler at a time: the counters and the hook are not re-entrant */
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGINT);
  sigaddset(&sa.sa_mask, SIGTERM);
  sigaddset(&sa.sa_mask, SIGHUP);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  /* a hangup someone chose to ignore (nohup, trap '' HUP) stays ignored */
  struct sigaction hup;
  if (sigaction(SIGHUP, NULL, &hup) == 0 && hup.sa_handler != SIG_IGN) sigaction(SIGHUP, &sa, NULL);
}

void sg_loop_default_hangup(void) {
  struct sigaction hup;
  if (sigaction(SIGHUP, NULL, &hup) == 0 && hup.sa_handler == on_signal) signal(SIGHUP, SIG_DFL);
}

int sg_loop_take_signal(void) {
  int sig = last_signal;
  last_signal = 0;
  return sig;
}

int sg_loop_peek_signal(void) { return last_signal; }

long sg_loop_signals_seen(int *latest) {
  if (latest) *latest = latest_signal;
  return signal_count;
}
