/* LD_PRELOAD shim for tests: the first access() of a path ending in SWAPDIR_TRIGGER moves the
 * directory SWAPDIR_DIR aside (to SWAPDIR_DIR.moved) and puts a symbolic link to SWAPDIR_TO in
 * its place, as another local user who can write its parent could between sgrun's check of the
 * directory and its use of it. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef int (*access_fn)(const char *, int);

static int ends_with(const char *s, const char *tail) {
  size_t n = strlen(s), t = strlen(tail);
  return n >= t && strcmp(s + n - t, tail) == 0;
}

int access(const char *path, int mode) {
  static access_fn real_access;
  static int swapped;
  if (!real_access) real_access = (access_fn)dlsym(RTLD_NEXT, "access");
  const char *trigger = getenv("SWAPDIR_TRIGGER"), *dir = getenv("SWAPDIR_DIR"), *to = getenv("SWAPDIR_TO");
  if (!swapped && trigger && dir && to && ends_with(path, trigger)) {
    char moved[4096];
    snprintf(moved, sizeof moved, "%s.moved", dir);
    swapped = rename(dir, moved) == 0 && symlink(to, dir) == 0;
    if (!swapped) fprintf(stderr, "swapdir: could not swap %s\n", dir);
  }
  return real_access(path, mode);
}
