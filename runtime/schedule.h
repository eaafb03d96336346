#ifndef SG_SCHEDULE_H
#define SG_SCHEDULE_H
/* Timed runs: durations ("90s", "5m", "1h30m"), standard 5-field cron expressions, and the lock
 * that keeps two sgrun processes from running the same playbook at once. */
#include <stddef.h>
#include <time.h>

/* Seconds in "1h30m", "45s", "2d" or a plain number of seconds; -1 if malformed. */
double sg_parse_duration(const char *s);

struct sg_cron {
  unsigned long long minute; /* bit i set: minute i matches */
  unsigned hour;             /* bits 0..23 */
  unsigned dom;              /* bits 1..31 */
  unsigned month;            /* bits 1..12 */
  unsigned dow;              /* bits 0..6, Sunday = 0 (7 is accepted for Sunday) */
  int dom_any, dow_any;      /* '*' fields: cron's day rule uses them */
};

/* Parses "MIN HOUR DOM MON DOW" (lists, ranges, steps, names like mon/jan). 0, or -1 with a
 * message in err. */
int sg_cron_parse(const char *expr, struct sg_cron *out, char *err, size_t errlen);

/* The first matching minute strictly after `after` (local time); -1 if none within 5 years. */
time_t sg_cron_next(const struct sg_cron *c, time_t after);

/* Takes the lock of a job: an exclusive flock on a file that records the owner's pid and start
 * time. The job is `name` when given (--lock-name), else the playbook's real path with its
 * arguments; either way with `variant` (NULL, or what else of sgrun's options makes it another
 * job: a dry run, the emulator, a profile). The file lives in a directory only this user can write (see lock_dir in
 * schedule.c), is opened without following symlinks and must belong to this user. Returns the
 * fd (keep it open while running), -1 when another live process of this user holds it (holder
 * describes it), or -2 on an error, a foreign lock file included (holder says what). A lock
 * left by a dead process is free again (the kernel drops flocks with their process); stale_pid
 * then names it. The lock is emptied at exit too, os.exit included. */
int sg_lock_playbook(const char *playbook, char *const *args, int nargs, const char *name, const char *variant,
                     char *holder, size_t holderlen, long *stale_pid);

/* Releases a lock taken by sg_lock_playbook, leaving the file empty so the next owner can tell a
 * clean release from a crash. */
void sg_unlock_playbook(int fd);
/* The checked directory of the locks (created 0700 where sgrun picks it), for files that live
 * beside them (roll-out journals). 0, or -1 with the reason in err. */
int sg_lock_dir(char *dir, size_t dirlen, char *err, size_t errlen);

#endif
