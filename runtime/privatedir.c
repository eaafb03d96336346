#include "privatedir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int sg_open_private_dir(const char *dir, int create, char *why, size_t whylen) {
  if (create && mkdir(dir, 0700) != 0 && errno != EEXIST) {
    snprintf(why, whylen, "cannot create it: %s", strerror(errno));
    return -1;
  }
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  if (dfd < 0 || fstat(dfd, &st) != 0) {
    int e = errno;
    struct stat lst;
    /* O_NOFOLLOW with O_DIRECTORY says ENOTDIR of a link, not ELOOP */
    int link = e == ELOOP || (lstat(dir, &lst) == 0 && S_ISLNK(lst.st_mode));
    snprintf(why, whylen, "%s", link ? "it is a symbolic link" : strerror(e));
    if (dfd >= 0) close(dfd);
    return -1;
  }
  if (st.st_uid != geteuid() || (st.st_mode & 022)) {
    snprintf(why, whylen, "it is %s (owner uid %ld, mode %03o): others could plant files there",
             st.st_uid != geteuid() ? "not yours" : "writable by others", (long)st.st_uid,
             (unsigned)(st.st_mode & 0777));
    close(dfd);
    return -1;
  }
  return dfd;
}

void sg_parent_dir(const char *path, char *out, size_t outlen) {
  snprintf(out, outlen, "%s", path);
  char *slash = strrchr(out, '/');
  if (slash == out) slash[1] = '\0';
  else if (slash) *slash = '\0';
  else snprintf(out, outlen, ".");
}
