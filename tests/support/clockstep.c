/* LD_PRELOAD shim for tests: the wall clock steps by CLOCKSTEP_SECONDS once the process has run
 * CLOCKSTEP_AFTER seconds, as an NTP step or an operator's `date -s` would; the monotonic
 * clock goes on untouched. */
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

static clock_gettime_fn real_clock_gettime;
static double started;

static double monotonic(void) {
  struct timespec ts;
  real_clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

__attribute__((constructor)) static void init(void) {
  real_clock_gettime = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
  started = monotonic();
}

static time_t step(void) {
  const char *after = getenv("CLOCKSTEP_AFTER"), *by = getenv("CLOCKSTEP_SECONDS");
  if (!by || monotonic() - started < (after ? atof(after) : 0)) return 0;
  return (time_t)atol(by);
}

int clock_gettime(clockid_t id, struct timespec *ts) {
  if (!real_clock_gettime) init();
  int rc = real_clock_gettime(id, ts);
  if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) ts->tv_sec += step();
  return rc;
}

time_t time(time_t *out) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  if (out) *out = ts.tv_sec;
  return ts.tv_sec;
}

int gettimeofday(struct timeval *tv, void *tz) {
  (void)tz;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  tv->tv_sec = ts.tv_sec;
  tv->tv_usec = ts.tv_nsec / 1000;
  return 0;
}
