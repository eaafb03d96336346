#ifndef SG_ATOMICFILE_H
#define SG_ATOMICFILE_H
/* Files replaced whole, safely in directories others can write: the temporary file is created
 * exclusively (O_CREAT|O_EXCL: a planted file or symlink makes it fail, never followed), mode
 * 0600, beside the target, then made durable and renamed over the target. */
#include <stddef.h>

/* Writes all of data to fd, going on after short writes and EINTR. 0, or -1 with errno set. */
int sg_write_all(int fd, const char *data, size_t len);

/* Creates "PATH.PID.XXXXXX.tmp" exclusively (PID: this process) and writes data into it, after
 * removing the temporary files of PATH left by writers that no longer run (sg_clean_dead_temps).
 * Returns 0 with the temporary file's name in tmp (tmplen bytes), or -1 with a message in err. */
int sg_write_temp(const char *path, const char *data, size_t len, char *tmp, size_t tmplen, char *err,
                  size_t errlen);

/* Removes "PATH.PID.XXXXXX.tmp" files whose PID names no running process (a save that was killed).
 * A live writer's file is never touched: a process that exists, even under another user, keeps
 * its file. Best effort: errors are ignored, the next save tries again. */
void sg_clean_dead_temps(const char *path);

/* sg_write_temp, fsync, rename over path, fsync of the directory. 0, or -1 with a message. */
int sg_write_atomic(const char *path, const char *data, size_t len, char *err, size_t errlen);

/* fsync of a file or directory; a symlink is followed only to a directory. 0, or -1 with errno set. */
int sg_fsync_path(const char *path);

#endif
