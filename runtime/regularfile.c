#include "regularfile.h"

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <unistd.h>

int sg_open_regular(const char *path, struct stat *st) {
  /* O_NONBLOCK: a FIFO opens at once (and is then refused) instead of blocking in open; a
   * regular file reads the same either way */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return -1;
  if (fstat(fd, st) != 0) {
    int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  if (!S_ISREG(st->st_mode)) {
    close(fd);
    return SG_NOT_REGULAR;
  }
  return fd;
}

const char *sg_file_kind(mode_t mode) {
  return S_ISDIR(mode) ? "a directory" : S_ISFIFO(mode) ? "a FIFO" : "a device or socket";
}

int sg_push_file(lua_State *L, int fd) {
  int top = lua_gettop(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (;;) {
    char *p = luaL_prepbuffer(&b);
    ssize_t n = read(fd, p, LUAL_BUFFERSIZE);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      lua_settop(L, top);
      return err;
    }
    if (n == 0) break;
    luaL_addsize(&b, (size_t)n);
  }
  luaL_pushresult(&b);
  return 0;
}
