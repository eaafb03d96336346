/* libFuzzer target: the duration and cron parsers, and the next-time search on what parses. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "schedule.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = 0;
  sg_parse_duration(text);
  struct sg_cron cron;
  char err[300];
  if (sg_cron_parse(text, &cron, err, sizeof err) == 0) sg_cron_next(&cron, 1795350000);
  free(text);
  return 0;
}
