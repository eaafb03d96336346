#ifndef SG_CHECK_H
#define SG_CHECK_H
/* Minimal assertions for the C unit tests; the closing line is the one CI reads. */
#include <stdio.h>

static int check_passed, check_failed;

#define CHECK(cond)                                                                    \
  do {                                                                                 \
    if (cond) check_passed++;                                                          \
    else {                                                                             \
      check_failed++;                                                                  \
      fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                  \
    }                                                                                  \
  } while (0)

static inline int check_report(void) {
  printf("%d passed, %d failed\n", check_passed, check_failed);
  return check_failed ? 1 : 0;
}

#endif
