#include "atomicfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sg_write_temp(const char *path, const char *data, size_t len, char *tmp, size_t tmplen, char *err,
                  size_t errlen) {
  if ((size_t)snprintf(tmp, tmplen, "%s.XXXXXX.tmp", path) >= tmplen) {
    snprintf(err, errlen, "%s: the path is too long", path);
    return -1;
  }
  /* mkostemps opens with O_CREAT|O_EXCL and mode 0600 */
  int fd = mkostemps(tmp, 4, O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, errlen, "cannot write %s (its temporary file): %s", path, strerror(errno));
    return -1;
  }
  for (size_t done = 0; done < len;) {
    ssize_t n = write(fd, data + done, len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      snprintf(err, errlen, "cannot write %s: %s", tmp, n < 0 ? strerror(errno) : "short write");
      close(fd);
      unlink(tmp);
      return -1;
    }
    done += (size_t)n;
  }
  if (close(fd) != 0) {
    snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
    unlink(tmp);
    return -1;
  }
  return 0;
}

int sg_fsync_path(const char *path) {
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  int e = errno;
  close(fd);
  errno = e;
  return rc;
}

int sg_write_atomic(const char *path, const char *data, size_t len, char *err, size_t errlen) {
  char tmp[PATH_MAX];
  if (sg_write_temp(path, data, len, tmp, sizeof tmp, err, errlen) != 0) return -1;
  if (sg_fsync_path(tmp) != 0 || rename(tmp, path) != 0) {
    snprintf(err, errlen, "cannot replace %s: %s", path, strerror(errno));
    unlink(tmp);
    return -1;
  }
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash) *(slash == dir ? slash + 1 : slash) = 0;
  else snprintf(dir, sizeof dir, ".");
  if (sg_fsync_path(dir) != 0) {
    snprintf(err, errlen, "%s written, but its directory could not be synced: %s", path, strerror(errno));
    return -1;
  }
  return 0;
}
