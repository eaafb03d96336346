/* _sg.fs: what plain Lua cannot do with files but safe writes need. */
#include <lauxlib.h>
#include <lua.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* fsync(path) -> true | nil, message. Works on directories too, which makes a rename durable. */
static int l_fsync(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || fsync(fd) != 0) {
    int err = errno;
    if (fd >= 0) close(fd);
    luaL_pushfail(L);
    lua_pushfstring(L, "fsync %s: %s", path, strerror(err));
    return 2;
  }
  close(fd);
  lua_pushboolean(L, 1);
  return 1;
}

/* mode(path) -> permission bits (integer) | nil, message: sg.connect refuses a profile file
 * that others can read. */
static int l_mode(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (stat(path, &st) != 0) {
    int err = errno;
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, strerror(err));
    return 2;
  }
  lua_pushinteger(L, (lua_Integer)(st.st_mode & 07777));
  return 1;
}

int luaopen__sg_fs(lua_State *L) {
  static const luaL_Reg fns[] = {{"fsync", l_fsync}, {"mode", l_mode}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
