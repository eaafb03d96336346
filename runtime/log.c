#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define MAX_FIELDS 16

static struct {
  enum sg_log_format format;
  char playbook[512];
  char run_id[64];
} cfg;

void sg_log_configure(enum sg_log_format format, const char *playbook) {
  cfg.format = format;
  snprintf(cfg.playbook, sizeof cfg.playbook, "%s", playbook ? playbook : "");
}

enum sg_log_format sg_log_format(void) { return cfg.format; }

void sg_log_set_run(const char *run_id) { snprintf(cfg.run_id, sizeof cfg.run_id, "%s", run_id ? run_id : ""); }

/* The length of the well-formed UTF-8 sequence at p (1 to 4), or 0 when it is not one. */
static int utf8_length(const unsigned char *p) {
  if (p[0] < 0x80) return 1;
  int n = p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 && p[0] <= 0xdf ? 2 : 0;
  if (n == 3 && p[0] > 0xef) n = 0;
  for (int i = 1; i < n; i++)
    if ((p[i] & 0xc0) != 0x80) return 0;
  /* overlong forms, UTF-16 surrogates and code points past U+10FFFF */
  if ((n == 3 && p[0] == 0xe0 && p[1] < 0xa0) || (n == 3 && p[0] == 0xed && p[1] >= 0xa0) ||
      (n == 4 && p[0] == 0xf0 && p[1] < 0x90) || (n == 4 && p[0] == 0xf4 && p[1] >= 0x90))
    return 0;
  return n;
}

/* A JSON string: a log line stays valid JSON whatever a provider's message holds (a byte that
 * is not UTF-8 is written as U+FFFD). */
static void json_string(FILE *out, const char *s) {
  fputc('"', out);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
    case '"': fputs("\\\"", out); break;
    case '\\': fputs("\\\\", out); break;
    case '\n': fputs("\\n", out); break;
    case '\r': fputs("\\r", out); break;
    case '\t': fputs("\\t", out); break;
    default:
      if (*p < 0x20 || *p == 0x7f) {
        fprintf(out, "\\u%04x", *p);
      } else {
        int n = utf8_length(p);
        if (n == 0) {
          fputs("\\ufffd", out);
        } else {
          fwrite(p, 1, (size_t)n, out);
          p += n - 1;
        }
      }
    }
  }
  fputc('"', out);
}

void sg_write_printable(FILE *out, const char *s, int keep_lines) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (keep_lines && (*p == '\n' || *p == '\t')) fputc(*p, out);
    else if (*p < 0x20 || *p == 0x7f) fprintf(out, "\\x%02x", *p);
    else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) fprintf(out, "\\u{%x}", *++p);
    else fputc(*p, out);
  }
}

void sg_log_write(const char *level, const char *event, const char *message, int nfields,
                  const char *const *fields) {
  char when[40];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(when + n, sizeof when - n, ".%03ldZ", ts.tv_nsec / 1000000);
  FILE *out = stderr;
  flockfile(out);
  if (cfg.format == SG_LOG_JSON) {
    fputs("{\"time\":", out);
    json_string(out, when);
    fputs(",\"level\":", out);
    json_string(out, level);
    fputs(",\"playbook\":", out);
    json_string(out, cfg.playbook);
    fputs(",\"run_id\":", out);
    json_string(out, cfg.run_id);
    fputs(",\"event\":", out);
    json_string(out, event);
    if (message) {
      fputs(",\"message\":", out);
      json_string(out, message);
    }
    fputs(",\"fields\":{", out);
    for (int i = 0; i < nfields; i++) {
      if (i) fputc(',', out);
      json_string(out, fields[2 * i]);
      fputc(':', out);
      json_string(out, fields[2 * i + 1]);
    }
    fputs("}}\n", out);
  } else {
    fprintf(out, "%s %-5s %s", when, level, event);
    if (message) {
      fputs(": ", out);
      sg_write_printable(out, message, 0);
    }
    for (int i = 0; i < nfields; i++) {
      fprintf(out, " %s=", fields[2 * i]);
      sg_write_printable(out, fields[2 * i + 1], 0);
    }
    if (cfg.run_id[0]) fprintf(out, " [run %s]", cfg.run_id);
    fputc('\n', out);
  }
  funlockfile(out);
  fflush(out);
}

void sg_log(const char *level, const char *event, const char *message, ...) {
  const char *fields[2 * MAX_FIELDS];
  int n = 0;
  va_list ap;
  va_start(ap, message);
  for (const char *name; n < MAX_FIELDS && (name = va_arg(ap, const char *));) {
    fields[2 * n] = name;
    fields[2 * n + 1] = va_arg(ap, const char *);
    n++;
  }
  va_end(ap);
  sg_log_write(level, event, message, n, fields);
}
