#ifndef SG_EXT_H
#define SG_EXT_H
#include <stddef.h>

/* The address of a symbol of libsgrun_net.so (the networking half of sgrun), loading the library
 * on first use from beside the executable (or ../lib/sgrun/). NULL with a message in err when it
 * cannot be loaded. */
void *sg_ext_symbol(const char *name, char *err, size_t errlen);

/* Whether the library has been loaded (nothing to clean up otherwise). */
int sg_ext_loaded(void);

#endif
