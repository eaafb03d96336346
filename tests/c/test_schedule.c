/* Durations, cron expressions and the playbook lock. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "lock.h"
#include "schedule.h"

static time_t local(int y, int mon, int d, int h, int min) {
  struct tm tm = {.tm_year = y - 1900, .tm_mon = mon - 1, .tm_mday = d, .tm_hour = h, .tm_min = min, .tm_isdst = -1};
  return mktime(&tm);
}

static void test_durations(void) {
  CHECK(sg_parse_duration("30s") == 30);
  CHECK(sg_parse_duration("5m") == 300);
  CHECK(sg_parse_duration("1h30m") == 5400);
  CHECK(sg_parse_duration("2d") == 172800);
  CHECK(sg_parse_duration("1.5") == 1.5);
  CHECK(sg_parse_duration("") < 0);
  CHECK(sg_parse_duration("5x") < 0);
  CHECK(sg_parse_duration("-5s") < 0);
  CHECK(sg_parse_duration("0") < 0);
}

static void test_cron(void) {
  struct sg_cron c;
  char err[300];
  CHECK(sg_cron_parse("*/15 * * * *", &c, err, sizeof err) == 0);
  CHECK(sg_cron_next(&c, local(2026, 11, 22, 10, 7)) == local(2026, 11, 22, 10, 15));
  CHECK(sg_cron_next(&c, local(2026, 11, 22, 10, 45)) == local(2026, 11, 22, 11, 0));
  CHECK(sg_cron_parse("30 2 * * mon-fri", &c, err, sizeof err) == 0);
  /* 2026-11-22 is a Sunday: next weekday 02:30 is Monday the 23rd */
  CHECK(sg_cron_next(&c, local(2026, 11, 22, 3, 0)) == local(2026, 11, 23, 2, 30));
  CHECK(sg_cron_parse("0 0 1 jan *", &c, err, sizeof err) == 0);
  CHECK(sg_cron_next(&c, local(2026, 11, 22, 3, 0)) == local(2027, 1, 1, 0, 0));
  CHECK(sg_cron_parse("0 12 13 * 5", &c, err, sizeof err) == 0); /* the 13th or any Friday */
  CHECK(sg_cron_next(&c, local(2026, 11, 22, 0, 0)) == local(2026, 11, 27, 12, 0));
  CHECK(sg_cron_parse("0 0 * * 7", &c, err, sizeof err) == 0); /* 7 is Sunday */
  CHECK(sg_cron_next(&c, local(2026, 11, 22, 1, 0)) == local(2026, 11, 29, 0, 0));
  CHECK(sg_cron_parse("1,2,3-5/2 * * * *", &c, err, sizeof err) == 0);
  CHECK(c.minute == ((1ULL << 1) | (1ULL << 2) | (1ULL << 3) | (1ULL << 5)));
  CHECK(sg_cron_parse("* * *", &c, err, sizeof err) == -1 && strstr(err, "5 fields"));
  CHECK(sg_cron_parse("61 * * * *", &c, err, sizeof err) == -1 && strstr(err, "minute"));
  CHECK(sg_cron_parse("* * * foo *", &c, err, sizeof err) == -1 && strstr(err, "month"));
  /* a step beyond the range is its first value; 2^32 + 1 wrapped to a step of 1 (every minute) */
  CHECK(sg_cron_parse("*/4294967297 * * * *", &c, err, sizeof err) == 0 && c.minute == 1);
  CHECK(sg_cron_parse("5/100 * * * *", &c, err, sizeof err) == 0 && c.minute == (1ULL << 5));
  /* a list too long to take whole is refused, not cut (the cut dropped its last days) */
  char longexpr[400] = "0 0 * * 1";
  while (strlen(longexpr) < 300) strcat(longexpr, ",1");
  strcat(longexpr, ",5");
  CHECK(sg_cron_parse(longexpr, &c, err, sizeof err) == -1 && strstr(err, "at most 255"));
  CHECK(sg_cron_parse("* * 31 2 *", &c, err, sizeof err) == 0);
  CHECK(sg_cron_next(&c, local(2026, 1, 1, 0, 0)) == -1); /* February never has a 31st */
}

static void test_lock(void) {
  char dir[] = "/tmp/sgrun-lock-test-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  setenv("SGRUN_LOCK_DIR", dir, 1);
  char holder[600];
  long stale = 0;
  int fd = sg_lock_playbook("some/playbook.lua", NULL, 0, NULL, NULL, holder, sizeof holder, &stale);
  CHECK(fd >= 0 && stale == 0);
  /* a second open file description conflicts, as a second process would */
  CHECK(sg_lock_playbook("some/playbook.lua", NULL, 0, NULL, NULL, holder, sizeof holder, &stale) == -1);
  CHECK(strstr(holder, "pid ") != NULL);
  CHECK(sg_lock_playbook("other.lua", NULL, 0, NULL, NULL, holder, sizeof holder, &stale) >= 0);
  sg_unlock_playbook(fd);
  fd = sg_lock_playbook("some/playbook.lua", NULL, 0, NULL, NULL, holder, sizeof holder, &stale);
  CHECK(fd >= 0 && stale == 0); /* released cleanly: nothing stale */
  close(fd);                    /* as if the process died: the file still names it */
  fd = sg_lock_playbook("some/playbook.lua", NULL, 0, NULL, NULL, holder, sizeof holder, &stale);
  CHECK(fd >= 0);
  sg_unlock_playbook(fd);
  /* the key is the playbook with its arguments, or the lock name */
  char *a[] = {"web.snapshot.json"}, *b[] = {"db.snapshot.json"};
  fd = sg_lock_playbook("drift.lua", a, 1, NULL, NULL, holder, sizeof holder, &stale);
  CHECK(fd >= 0);
  CHECK(sg_lock_playbook("drift.lua", b, 1, NULL, NULL, holder, sizeof holder, &stale) >= 0);
  CHECK(sg_lock_playbook("drift.lua", a, 1, NULL, NULL, holder, sizeof holder, &stale) == -1);
  /* another account, the emulator or a dry run is another job */
  CHECK(sg_lock_playbook("drift.lua", a, 1, NULL, "dry-run ", holder, sizeof holder, &stale) >= 0);
  CHECK(sg_lock_playbook("drift.lua", a, 1, NULL, "profile=prod", holder, sizeof holder, &stale) >= 0);
  int named = sg_lock_playbook("drift.lua", a, 1, "nightly", NULL, holder, sizeof holder, &stale);
  CHECK(named >= 0);
  CHECK(sg_lock_playbook("other.lua", NULL, 0, "nightly", NULL, holder, sizeof holder, &stale) == -1);
  /* a dry-run preview under the same lock name is another job, as without one */
  CHECK(sg_lock_playbook("other.lua", NULL, 0, "nightly", "dry-run ", holder, sizeof holder, &stale) >= 0);
  sg_unlock_playbook(named);
  sg_unlock_playbook(fd);
  /* a directory others can write is refused */
  CHECK(chmod(dir, 0777) == 0);
  CHECK(sg_lock_playbook("drift.lua", a, 1, NULL, NULL, holder, sizeof holder, &stale) == -2);
  CHECK(strstr(holder, "writable by others") != NULL);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  CHECK(system(cmd) == 0);
}

/* Daylight saving, in a POSIX TZ (no tzdata needed): Central Europe, forward at 02:00 on the last
 * Sunday of March (2027-03-28), back at 03:00 on the last Sunday of October (2027-10-31). */
static void test_cron_dst(void) {
  const char *saved = getenv("TZ");
  char *old = saved ? strdup(saved) : NULL;
  setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3", 1);
  tzset();
  struct sg_cron c;
  char err[300];
  struct tm tm;
  /* 02:30 does not exist on 28 March: the job runs that day, just after the change, not the next */
  CHECK(sg_cron_parse("30 2 * * *", &c, err, sizeof err) == 0);
  time_t next = sg_cron_next(&c, local(2027, 3, 27, 12, 0));
  localtime_r(&next, &tm);
  CHECK(tm.tm_mday == 28 && tm.tm_mon == 2 && tm.tm_hour == 3 && tm.tm_min == 0);
  time_t after = sg_cron_next(&c, next);
  localtime_r(&after, &tm);
  CHECK(tm.tm_mday == 29 && tm.tm_hour == 2 && tm.tm_min == 30);
  /* 02:30 happens twice on 31 October: the job runs once that day */
  next = sg_cron_next(&c, local(2027, 10, 30, 12, 0));
  localtime_r(&next, &tm);
  CHECK(tm.tm_mday == 31 && tm.tm_hour == 2 && tm.tm_min == 30);
  after = sg_cron_next(&c, next);
  localtime_r(&after, &tm);
  CHECK(tm.tm_mday == 1 && tm.tm_mon == 10 && tm.tm_hour == 2 && tm.tm_min == 30);
  /* an hourly job goes on through both changes; each wall-clock hour runs once (the repeated
   * 02:00 of the autumn too), so no gap is longer than the change's hour */
  CHECK(sg_cron_parse("0 * * * *", &c, err, sizeof err) == 0);
  time_t t = local(2027, 3, 28, 0, 30);
  for (int i = 0; i < 4; i++) {
    time_t n = sg_cron_next(&c, t);
    CHECK(n > t && n - t <= 3600);
    t = n;
  }
  t = local(2027, 10, 31, 0, 30);
  int last_hour = -1;
  for (int i = 0; i < 5; i++) {
    time_t n = sg_cron_next(&c, t);
    localtime_r(&n, &tm);
    CHECK(n > t && n - t <= 7200 && tm.tm_hour != last_hour && tm.tm_min == 0);
    last_hour = tm.tm_hour;
    t = n;
  }
  if (old) setenv("TZ", old, 1);
  else unsetenv("TZ");
  free(old);
  tzset();
}

int main(void) {
  test_durations();
  test_cron();
  test_cron_dst();
  test_lock();
  return check_report();
}
