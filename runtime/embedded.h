#ifndef SG_EMBEDDED_H
#define SG_EMBEDDED_H
#include <stddef.h>

/* One Lua module compiled into the binary (see cmake/embed_lua.cmake). */
struct sg_embedded {
  const char *module;    /* "sg.plan" */
  const char *chunkname; /* "@stdlib/sg/plan.lua", so tracebacks point at the source tree */
  const char *source;
  size_t size;
};

/* Terminated by an entry whose module is NULL. */
extern const struct sg_embedded sg_embedded_modules[];

#endif
