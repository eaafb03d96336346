/* The lock file's pid is read once its flock is taken or refused, not before: another process
 * releasing or taking the lock between the two must not be misreported. That process is played
 * by a second open file description of this one, acting from inside flock just before the lock
 * is tried (flock here is this file's, which sg_lock_file calls). */
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "check.h"
#include "lock.h"

static void (*before_next_flock)(void);

int flock(int fd, int operation) {
  void (*hook)(void) = before_next_flock;
  before_next_flock = NULL;
  if (hook) hook();
  return (int)syscall(SYS_flock, fd, operation);
}

static const char other_pid_line[] = "424242 1700000000\n";
static int other_fd = -1;

/* The other process takes the lock and records itself, as sg_lock_file does. */
static void other_takes_lock(void) {
  char holder[600];
  long stale;
  other_fd = sg_lock_file("job.lock", holder, sizeof holder, &stale);
  CHECK(other_fd >= 0);
  CHECK(ftruncate(other_fd, 0) == 0);
  CHECK(pwrite(other_fd, other_pid_line, strlen(other_pid_line), 0) == (ssize_t)strlen(other_pid_line));
}

/* The other process ends its run and lets the lock go cleanly (the file emptied). */
static void other_releases_lock(void) {
  sg_unlock_file(other_fd);
  other_fd = -1;
}

int main(void) {
  char dir[] = "/tmp/sgrun-lock-order-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  setenv("SGRUN_LOCK_DIR", dir, 1);
  char holder[600];
  long stale = 0;

  /* taken just before this process tries it: refused, and the holder is named */
  before_next_flock = other_takes_lock;
  CHECK(sg_lock_file("job.lock", holder, sizeof holder, &stale) == -1);
  CHECK(strstr(holder, "pid 424242 since ") != NULL);
  if (!strstr(holder, "pid 424242 since ")) fprintf(stderr, "holder: %s\n", holder);

  /* released cleanly just before this process tries it: taken, and no run is said to have died */
  before_next_flock = other_releases_lock;
  int fd = sg_lock_file("job.lock", holder, sizeof holder, &stale);
  CHECK(fd >= 0);
  CHECK(stale == 0);
  if (stale != 0) fprintf(stderr, "stale pid %ld reported for a clean release\n", stale);
  sg_unlock_file(fd);

  /* a holder that died (its descriptor closed, the file still naming it) is still reported */
  other_takes_lock();
  close(other_fd);
  fd = sg_lock_file("job.lock", holder, sizeof holder, &stale);
  CHECK(fd >= 0 && stale == 424242);
  sg_unlock_file(fd);

  char cmd[64];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  CHECK(system(cmd) == 0);
  return check_report();
}
