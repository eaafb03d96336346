#ifndef SG_LOG_H
#define SG_LOG_H
/* Run logs on stderr: one JSON object per line (time, level, playbook, run_id, event, message,
 * fields) for log shippers, or one readable line for people. */

enum sg_log_format { SG_LOG_TEXT, SG_LOG_JSON };

void sg_log_configure(enum sg_log_format format, const char *playbook);
enum sg_log_format sg_log_format(void);
void sg_log_set_run(const char *run_id);

/* fields: nfields pairs of name, value strings. */
void sg_log_write(const char *level, const char *event, const char *message, int nfields,
                  const char *const *fields);

/* Writes s for a person's terminal: control characters (C0, DEL, and C1 as UTF-8) as \xHH or
 * \u{HH}, as sg.printable does in Lua, so that a provider's text cannot send escape sequences;
 * with keep_lines, newlines and tabs stay (a traceback's layout). */
#include <stdio.h>
void sg_write_printable(FILE *out, const char *s, int keep_lines);

/* Shorthand: sg_log(level, event, message, "name", "value", ..., NULL). */
void sg_log(const char *level, const char *event, const char *message, ...);

#endif
