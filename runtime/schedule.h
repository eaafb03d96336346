#ifndef SG_SCHEDULE_H
#define SG_SCHEDULE_H
/* Timed runs: durations ("90s", "5m", "1h30m") and standard 5-field cron expressions. */
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

#endif
