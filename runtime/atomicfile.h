#ifndef SG_ATOMICFILE_H
#define SG_ATOMICFILE_H
/* Files replaced whole, safely in directories others can write: the temporary file is created
 * exclusively (O_CREAT|O_EXCL: a planted file or symlink makes it fail, never followed), mode
 * 0600, beside the target, then made durable and renamed over the target. */
#include <stddef.h>

/* Creates "PATH.XXXXXX.tmp" exclusively and writes data into it. Returns 0 with the temporary
 * file's name in tmp (tmplen bytes), or -1 with a message in err. */
int sg_write_temp(const char *path, const char *data, size_t len, char *tmp, size_t tmplen, char *err,
                  size_t errlen);

/* sg_write_temp, fsync, rename over path, fsync of the directory. 0, or -1 with a message. */
int sg_write_atomic(const char *path, const char *data, size_t len, char *err, size_t errlen);

/* fsync of a file or directory, opened without following a symlink. 0, or -1 with errno set. */
int sg_fsync_path(const char *path);

#endif
