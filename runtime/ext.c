#include "ext.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define EXT_NAME "libsgrun_net.so"

static void *handle;

static void *open_beside_executable(char *err, size_t errlen) {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) {
    snprintf(err, errlen, "cannot find the sgrun executable to locate " EXT_NAME);
    return NULL;
  }
  exe[n] = 0;
  char *slash = strrchr(exe, '/');
  if (slash) slash[1] = 0;
  static const char *const places[] = {"", "../lib/sgrun/"};
  char path[PATH_MAX + 64];
  const char *first_error = NULL;
  for (size_t i = 0; i < sizeof places / sizeof *places; i++) {
    snprintf(path, sizeof path, "%s%s" EXT_NAME, exe, places[i]);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h) return h;
    if (!first_error) snprintf(err, errlen, "cannot load %s: %s (reinstall sgrun: the library must sit "
                               "beside the executable or in ../lib/sgrun/ from it)", path, dlerror());
    first_error = err;
  }
  return NULL;
}

void *sg_ext_symbol(const char *name, char *err, size_t errlen) {
  if (!handle) handle = open_beside_executable(err, errlen);
  if (!handle) return NULL;
  void *sym = dlsym(handle, name);
  if (!sym) snprintf(err, errlen, EXT_NAME " has no symbol %s: %s", name, dlerror());
  return sym;
}

int sg_ext_loaded(void) { return handle != NULL; }
