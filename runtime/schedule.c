#include "schedule.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double sg_parse_duration(const char *s) {
  if (!s || !*s) return -1;
  char *end;
  double plain = strtod(s, &end);
  if (*end == 0) return plain > 0 ? plain : -1;
  double total = 0;
  const char *p = s;
  while (*p) {
    double v = strtod(p, &end);
    if (end == p || v < 0) return -1;
    double unit;
    switch (*end) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    default: return -1;
    }
    total += v * unit;
    p = end + 1;
  }
  return total > 0 ? total : -1;
}

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

/* A number or (for months and days) a three-letter name. */
static int field_value(const char **p, const char *const *names, int nnames, int base) {
  if (isdigit((unsigned char)**p)) {
    char *end;
    long v = strtol(*p, &end, 10);
    *p = end;
    return v > INT_MAX ? -1 : (int)v;
  }
  for (int i = 0; names && i < nnames; i++) {
    if (strncasecmp(*p, names[i], 3) == 0) {
      *p += 3;
      return i + base;
    }
  }
  return -1;
}

/* One field: comma-separated items of "*", "N", "N-M", each optionally "/STEP". */
static int parse_field(const char *text, int lo, int hi, const char *const *names, int nnames,
                       int base, unsigned long long *bits, int *any) {
  *bits = 0;
  *any = strcmp(text, "*") == 0;
  const char *p = text;
  for (;;) {
    int from, to, step = 1;
    if (*p == '*') {
      from = lo;
      to = hi;
      p++;
    } else {
      from = field_value(&p, names, nnames, base);
      to = from;
      if (*p == '-') {
        p++;
        to = field_value(&p, names, nnames, base);
      }
    }
    if (*p == '/') {
      p++;
      char *end;
      long asked = strtol(p, &end, 10);
      if (end == p || asked <= 0) return -1;
      /* a step past the field's range takes its first value only; read as an int, 2^32+1 was 1 */
      step = asked > hi ? hi + 1 : (int)asked;
      p = end;
      if (from == to) to = hi; /* "5/15" means from 5 to the end */
    }
    if (from < lo || to > hi || from > to) return -1;
    for (int v = from; v <= to; v += step) *bits |= 1ULL << v;
    if (*p == 0) return 0;
    if (*p != ',') return -1;
    p++;
  }
}

int sg_cron_parse(const char *expr, struct sg_cron *out, char *err, size_t errlen) {
  char copy[256];
  if (strlen(expr) >= sizeof copy) {
    /* cut, the rest of a list would be dropped without a word */
    snprintf(err, errlen, "cron expression is %zu characters long; at most %zu are taken: write long lists "
             "as ranges (1-5) or steps (*/2)", strlen(expr), sizeof copy - 1);
    return -1;
  }
  snprintf(copy, sizeof copy, "%s", expr);
  char *fields[6];
  int n = 0;
  for (char *tok = strtok(copy, " \t"); tok; tok = strtok(NULL, " \t")) {
    if (n == 5) {
      n++;
      break;
    }
    fields[n++] = tok;
  }
  if (n != 5) {
    snprintf(err, errlen, "cron expression '%s' must have 5 fields: minute hour day-of-month month "
             "day-of-week (e.g. '*/15 * * * *')", expr);
    return -1;
  }
  static const char *const what[] = {"minute (0-59)", "hour (0-23)", "day of month (1-31)",
                                     "month (1-12 or jan-dec)", "day of week (0-7 or sun-sat)"};
  unsigned long long bits[5];
  int any[5];
  const int lo[] = {0, 0, 1, 1, 0}, hi[] = {59, 23, 31, 12, 7};
  for (int i = 0; i < 5; i++) {
    const char *const *names = i == 3 ? month_names : i == 4 ? day_names : NULL;
    int nnames = i == 3 ? 12 : i == 4 ? 7 : 0;
    if (parse_field(fields[i], lo[i], hi[i], names, nnames, i == 3 ? 1 : 0, &bits[i], &any[i]) != 0) {
      snprintf(err, errlen, "cron expression '%s': field %d '%s' is not a valid %s", expr, i + 1,
               fields[i], what[i]);
      return -1;
    }
  }
  out->minute = bits[0];
  out->hour = (unsigned)bits[1];
  out->dom = (unsigned)bits[2];
  out->month = (unsigned)bits[3];
  out->dow = (unsigned)(bits[4] | (bits[4] >> 7 & 1)); /* 7 is Sunday too */
  out->dom_any = any[2];
  out->dow_any = any[4];
  return 0;
}

static int day_matches(const struct sg_cron *c, const struct tm *tm) {
  int dom = (c->dom >> tm->tm_mday) & 1, dow = (c->dow >> tm->tm_wday) & 1;
  /* cron's rule: when both day fields are restricted, either may match */
  if (!c->dom_any && !c->dow_any) return dom || dow;
  return dom && dow;
}

/* Carries overflowing fields of a wall-clock time (minute 60, day 32...) as a calendar does,
 * without daylight saving: the search below walks wall-clock times, so an hour a DST change
 * skips is still met (it was jumped over, and a 02:30 job never ran that day). */
static void carry_wall(struct tm *tm) {
  tm->tm_isdst = 0;
  time_t as_utc = timegm(tm);
  gmtime_r(&as_utc, tm);
}

/* The wall-clock reading at t, as a number that orders readings (seconds as if UTC). */
static time_t wall_at(time_t t) {
  struct tm tm;
  localtime_r(&t, &tm);
  tm.tm_isdst = 0;
  return timegm(&tm);
}

time_t sg_cron_next(const struct sg_cron *c, time_t after) {
  struct tm tm;
  time_t t = after - after % 60 + 60;
  localtime_r(&t, &tm);
  tm.tm_sec = 0;
  int last_year = tm.tm_year + 5;
  while (tm.tm_year <= last_year) {
    if (!((c->month >> (tm.tm_mon + 1)) & 1)) {
      tm.tm_mon++;
      tm.tm_mday = 1;
      tm.tm_hour = 0;
      tm.tm_min = 0;
    } else if (!day_matches(c, &tm)) {
      tm.tm_mday++;
      tm.tm_hour = 0;
      tm.tm_min = 0;
    } else if (!((c->hour >> tm.tm_hour) & 1)) {
      tm.tm_hour++;
      tm.tm_min = 0;
    } else if (!((c->minute >> tm.tm_min) & 1)) {
      tm.tm_min++;
    } else {
      /* a wall time met twice (the autumn change) runs once; one the clock skips (02:30 on the
       * spring change, which mktime places at 03:30) runs at the change, as cron runs it */
      struct tm at = tm;
      at.tm_isdst = -1;
      time_t when = mktime(&at);
      struct tm wanted = tm;
      wanted.tm_isdst = 0;
      time_t wanted_wall = timegm(&wanted);
      if (wall_at(when) != wanted_wall)
        while (when - 60 > after && wall_at(when - 60) > wanted_wall) when -= 60;
      if (when > after) return when;
      tm.tm_min++; /* its instant is already past: the clock was set back over it */
    }
    carry_wall(&tm);
  }
  return -1;
}
