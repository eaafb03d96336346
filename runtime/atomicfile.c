#include "atomicfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Parses "BASE.PID.XXXXXX.tmp" (name is a directory entry, base the target's file name); returns the
 * pid, or 0 when the name is not a temporary file of this target. */
static long temp_writer(const char *name, const char *base) {
  size_t blen = strlen(base);
  if (strncmp(name, base, blen) != 0 || name[blen] != '.') return 0;
  const char *p = name + blen + 1;
  char *end;
  errno = 0;
  long pid = strtol(p, &end, 10);
  if (errno != 0 || end == p || *p < '1' || *p > '9' || pid <= 0 || *end != '.') return 0;
  p = end + 1;
  size_t rest = strlen(p);
  if (rest != 6 + 4 || strcmp(p + 6, ".tmp") != 0) return 0;
  return pid;
}

void sg_clean_dead_temps(const char *path) {
  char dir[PATH_MAX];
  if ((size_t)snprintf(dir, sizeof dir, "%s", path) >= sizeof dir) return;
  char *slash = strrchr(dir, '/');
  const char *base = path;
  if (slash) {
    base = path + (slash - dir) + 1;
    *(slash == dir ? slash + 1 : slash) = 0;
  } else {
    snprintf(dir, sizeof dir, ".");
  }
  if (*base == 0) return;
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    long pid = temp_writer(e->d_name, base);
    /* only a writer known to be gone: EPERM means the process exists under another user */
    if (pid <= 0 || pid == (long)getpid() || (pid_t)pid != pid) continue;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
    unlinkat(dirfd(d), e->d_name, 0);
  }
  closedir(d);
}

int sg_write_all(int fd, const char *data, size_t len) {
  for (size_t done = 0; done < len;) {
    ssize_t n = write(fd, data + done, len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (n == 0) {
      errno = EIO;
      return -1;
    }
    done += (size_t)n;
  }
  return 0;
}

int sg_write_temp(const char *path, const char *data, size_t len, char *tmp, size_t tmplen, char *err,
                  size_t errlen) {
  sg_clean_dead_temps(path);
  if ((size_t)snprintf(tmp, tmplen, "%s.%ld.XXXXXX.tmp", path, (long)getpid()) >= tmplen) {
    snprintf(err, errlen, "%s: the path is too long", path);
    return -1;
  }
  /* mkostemps opens with O_CREAT|O_EXCL and mode 0600 */
  int fd = mkostemps(tmp, 4, O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, errlen, "cannot write %s (its temporary file): %s", path, strerror(errno));
    return -1;
  }
  if (sg_write_all(fd, data, len) != 0) {
    snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
    close(fd);
    unlink(tmp);
    return -1;
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
  /* a symlink is followed only to a directory: "snaps -> /data/snaps" is where the user writes,
   * and opening a directory has no side effect a device's open might */
  if (fd < 0 && errno == ELOOP) fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
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
