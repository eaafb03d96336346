/* The event loop on its own: timer order, stopping timers, fd readiness, signals. */
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "check.h"
#include "loop.h"

static char order[16];
static int norder;

static void record(void *ud) { order[norder++] = *(const char *)ud; }

static void test_timers_fire_in_deadline_order(void) {
  sg_loop *loop = sg_loop_new();
  norder = 0;
  static const char a = 'a', b = 'b', c = 'c', d = 'd';
  sg_timer_start(loop, 0.03, record, (void *)&c);
  sg_timer_start(loop, 0.01, record, (void *)&a);
  sg_timer_start(loop, 0.02, record, (void *)&b);
  sg_timer *never = sg_timer_start(loop, 0.015, record, (void *)&d);
  sg_timer_stop(loop, never);
  CHECK(sg_loop_pending(loop) == 3);
  double start = sg_now();
  while (sg_loop_pending(loop)) sg_loop_run_once(loop, -1);
  CHECK(norder == 3 && memcmp(order, "abc", 3) == 0);
  CHECK(sg_now() - start >= 0.029); /* never early; how late depends on the machine */
  sg_loop_free(loop);
}

static void test_zero_delay_timers_keep_start_order(void) {
  sg_loop *loop = sg_loop_new();
  norder = 0;
  static const char x = 'x', y = 'y';
  sg_timer_start(loop, 0, record, (void *)&x);
  sg_timer_start(loop, 0, record, (void *)&y);
  sg_loop_run_once(loop, 0);
  CHECK(norder == 2 && order[0] == 'x' && order[1] == 'y');
  sg_loop_free(loop);
}

static int readable_calls;
static void on_readable(void *ud, int fd, int events) {
  (void)ud;
  char buf[8];
  if (events & SG_READ) readable_calls++;
  while (read(fd, buf, sizeof buf) > 0) {
  }
}

static void test_fd_readiness(void) {
  sg_loop *loop = sg_loop_new();
  int fds[2];
  CHECK(pipe2(fds, O_NONBLOCK) == 0);
  CHECK(sg_loop_watch(loop, fds[0], SG_READ, on_readable, NULL) == 0);
  CHECK(sg_loop_run_once(loop, 0.01) == 0); /* nothing to read yet: times out */
  CHECK(write(fds[1], "x", 1) == 1);
  sg_loop_run_once(loop, 1);
  CHECK(readable_calls == 1);
  CHECK(sg_loop_watch(loop, fds[0], 0, NULL, NULL) == 0);
  CHECK(sg_loop_pending(loop) == 0);
  CHECK(write(fds[1], "x", 1) == 1);
  sg_loop_run_once(loop, 0.01);
  CHECK(readable_calls == 1); /* no longer watched */
  close(fds[0]);
  close(fds[1]);
  sg_loop_free(loop);
}

/* A parked fd: no callback, not pending, back to work with its registration kept; an event while
 * parked drops it; a closed and reused fd number is watched afresh, told to the loop or not. */
static void test_parked_fd(void) {
  sg_loop *loop = sg_loop_new();
  int fds[2];
  CHECK(pipe2(fds, O_NONBLOCK) == 0);
  readable_calls = 0;
  CHECK(sg_loop_watch(loop, fds[0], SG_READ, on_readable, NULL) == 0);
  sg_loop_park(loop, fds[0]);
  CHECK(sg_loop_pending(loop) == 0);
  CHECK(sg_loop_watch(loop, fds[0], SG_READ, on_readable, NULL) == 0);
  CHECK(sg_loop_pending(loop) == 1);
  CHECK(write(fds[1], "x", 1) == 1);
  sg_loop_run_once(loop, 1);
  CHECK(readable_calls == 1);

  sg_loop_park(loop, fds[0]);
  CHECK(write(fds[1], "y", 1) == 1);
  CHECK(sg_loop_run_once(loop, 1) == 0); /* the event is swallowed and the registration dropped */
  CHECK(readable_calls == 1);
  CHECK(sg_loop_watch(loop, fds[0], SG_READ, on_readable, NULL) == 0); /* registers it again */
  sg_loop_run_once(loop, 1);
  CHECK(readable_calls == 2);

  /* the owner unwatches before closing; the number's next file gets its own registration */
  sg_loop_park(loop, fds[0]);
  sg_loop_watch(loop, fds[0], 0, NULL, NULL);
  CHECK(sg_loop_pending(loop) == 0);
  int old = fds[0];
  close(fds[0]);
  close(fds[1]);
  CHECK(pipe2(fds, O_NONBLOCK) == 0);
  CHECK(fds[0] == old);
  CHECK(sg_loop_watch(loop, fds[0], SG_READ, on_readable, NULL) == 0);
  CHECK(write(fds[1], "z", 1) == 1);
  sg_loop_run_once(loop, 1);
  CHECK(readable_calls == 3);

  /* closed while parked, without a word to the loop (curl does that to some sockets): the
   * number's next file, watched for the same events, is registered all the same */
  sg_loop_park(loop, fds[0]);
  close(fds[0]);
  close(fds[1]);
  CHECK(pipe2(fds, O_NONBLOCK) == 0);
  CHECK(fds[0] == old);
  CHECK(sg_loop_watch(loop, fds[0], SG_READ, on_readable, NULL) == 0);
  CHECK(write(fds[1], "w", 1) == 1);
  sg_loop_run_once(loop, 1);
  CHECK(readable_calls == 4);
  sg_loop_watch(loop, fds[0], 0, NULL, NULL);
  close(fds[0]);
  close(fds[1]);
  sg_loop_free(loop);
}

static void test_signal_wakes_a_blocked_loop(void) {
  sg_loop *loop = sg_loop_new();
  sg_loop_catch_signals(loop, NULL);
  norder = 0;
  sg_timer_start(loop, 5, record, (void *)"z");
  raise(SIGINT);
  sg_loop_run_once(loop, -1);
  CHECK(norder == 0); /* woken by the signal, not by the timer */
  CHECK(sg_loop_take_signal() == SIGINT);
  CHECK(sg_loop_take_signal() == 0);
  sg_loop_free(loop);
}

/* With no descriptor left for the self-pipe, signals are still caught: before, the handlers
 * were not installed at all, and a Ctrl-C killed the process mid-write. */
static void test_signals_caught_without_a_self_pipe(void) {
  sg_loop *loop = sg_loop_new();
  signal(SIGINT, SIG_DFL);
  struct rlimit saved, none;
  CHECK(getrlimit(RLIMIT_NOFILE, &saved) == 0);
  int lowest_free = dup(0);
  CHECK(lowest_free >= 0);
  close(lowest_free);
  none = saved;
  none.rlim_cur = (rlim_t)lowest_free; /* no new descriptor fits: pipe2 fails with EMFILE */
  CHECK(setrlimit(RLIMIT_NOFILE, &none) == 0);
  sg_loop_catch_signals(loop, NULL);
  CHECK(setrlimit(RLIMIT_NOFILE, &saved) == 0);
  sg_loop_take_signal();
  raise(SIGINT);
  CHECK(sg_loop_take_signal() == SIGINT);
  sg_loop_free(loop);
}

static void test_long_waits_fit_epoll(void) {
  CHECK(sg_loop_wait_ms(-1) == -1);
  CHECK(sg_loop_wait_ms(0) == 0);
  CHECK(sg_loop_wait_ms(0.0004) == 1); /* never rounded down to "do not wait" */
  CHECK(sg_loop_wait_ms(1.5) == 1500);
  /* 25 days (a monthly cron's wait) wrapped to a negative timeout: "wait for ever" */
  CHECK(sg_loop_wait_ms(25 * 86400.0) == (int)(SG_LOOP_LONGEST_WAIT * 1000));
  CHECK(sg_loop_wait_ms(366 * 86400.0) == (int)(SG_LOOP_LONGEST_WAIT * 1000));
}

int main(void) {
  test_long_waits_fit_epoll();
  test_timers_fire_in_deadline_order();
  test_zero_delay_timers_keep_start_order();
  test_fd_readiness();
  test_parked_fd();
  test_signal_wakes_a_blocked_loop();
  test_signals_caught_without_a_self_pipe();
  return check_report();
}
