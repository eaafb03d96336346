/* _sg.fs: what plain Lua cannot do with files but safe writes and credential files need. */
#include <lauxlib.h>
#include <lua.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomicfile.h"
#include "regularfile.h"
#include "lock.h"

/* fsync(path) -> true | nil, message. Works on directories too, which makes a rename durable. */
static int l_fsync(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (sg_fsync_path(path) != 0) {
    int err = errno;
    luaL_pushfail(L);
    lua_pushfstring(L, "fsync %s: %s", path, strerror(err));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* mode(path) -> permission bits (integer), whether it is a regular file | nil, message. */
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
  lua_pushboolean(L, S_ISREG(st.st_mode));
  return 2;
}

/* create_private(path) -> true | nil, message: makes sure path is a regular file only its owner
 * may read or write (created 0600 when missing, narrowed to 0600 when not), never following a
 * symlink planted there. For files opened afterwards with io.open, which creates them 0666 minus
 * the umask. */
static int l_create_private(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
  if (fd < 0 || fchmod(fd, 0600) != 0) {
    int err = errno;
    if (fd >= 0) close(fd);
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, strerror(err));
    return 2;
  }
  close(fd);
  lua_pushboolean(L, 1);
  return 1;
}

/* write_temp(path, data) -> temporary path | nil, message: "PATH.PID.XXXXXX.tmp" created exclusively
 * (0600, a planted file or symlink is never followed) and written; the caller syncs and renames. */
static int l_write_temp(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  char tmp[PATH_MAX], err[PATH_MAX + 128];
  if (sg_write_temp(path, data, len, tmp, sizeof tmp, err, sizeof err) != 0) {
    luaL_pushfail(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushstring(L, tmp);
  return 1;
}

#define OWNED_METATABLE "sg.fs.owned"
#define PRIVATE_FILE_MAX (4 * 1024 * 1024)

/* A descriptor or directory stream held in a to-be-closed stack slot: closed when the function
 * returns, and also when Lua raises while the content or the list is built (out of memory), which
 * a C local would leak. Made before what it holds is opened, so that its own allocation failing
 * leaks nothing either. __gc too: out of memory, Lua can fail to grow the stack to call __close,
 * and then drops the slot without closing it. */
struct owned {
  int fd;
  DIR *dir;
};

static struct owned *push_owner(lua_State *L) {
  struct owned *owner = (struct owned *)lua_newuserdatauv(L, sizeof *owner, 0);
  owner->fd = -1;
  owner->dir = NULL;
  luaL_setmetatable(L, OWNED_METATABLE);
  lua_toclose(L, -1);
  return owner;
}

static int l_owned_close(lua_State *L) {
  struct owned *owner = (struct owned *)luaL_checkudata(L, 1, OWNED_METATABLE);
  if (owner->fd >= 0) close(owner->fd);
  if (owner->dir) closedir(owner->dir);
  owner->fd = -1;
  owner->dir = NULL;
  return 0;
}

/* sg_open_regular with a Lua failure: the descriptor (owned by a to-be-closed slot pushed first,
 * so the caller never closes it), or -1 with the pushed fail, message and kind ("missing" or
 * "read"). */
static int open_regular(lua_State *L, const char *path, struct stat *st) {
  struct owned *owner = push_owner(L);
  int fd = sg_open_regular(path, st);
  if (fd >= 0) return owner->fd = fd;
  int err = errno;
  luaL_pushfail(L);
  if (fd == SG_NOT_REGULAR)
    lua_pushfstring(L, "%s is not a regular file (%s)", path, sg_file_kind(st->st_mode));
  else
    lua_pushfstring(L, "%s: %s", path, strerror(err));
  lua_pushstring(L, fd != SG_NOT_REGULAR && err == ENOENT ? "missing" : "read");
  return -1;
}

/* Reads fd to its end: pushes the content, or fail, message and "read". */
static int read_all(lua_State *L, int fd, const char *path) {
  int err = sg_push_file(L, fd);
  if (err == 0) return 1;
  luaL_pushfail(L);
  lua_pushfstring(L, "%s: %s", path, strerror(err));
  lua_pushliteral(L, "read");
  return 3;
}

/* read_regular(path) -> content | nil, message, kind. For files a user names that decide what
 * sgrun does (snapshots, plans, inventories, reports): a FIFO, device or directory there is
 * refused at once, and so is a file another user could have written (threat model: another local
 * user cannot feed you settings), judged with fstat on the opened descriptor: kind "owner" (not
 * the user's nor root's) or "mode" (others, or a group other than the user's own, may write). */
static int l_read_regular(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  int fd = open_regular(L, path, &st);
  if (fd < 0) return 3;
  if (st.st_uid != geteuid() && st.st_uid != 0) {
    struct passwd *pw = getpwuid(st.st_uid);
    luaL_pushfail(L);
    lua_pushfstring(L, "refusing to read %s: it decides what sgrun writes and belongs to %s%s (uid %d), "
                    "not to you or root, so that user could change it; review it and copy it to a file of "
                    "your own", path, pw ? "user " : "", pw ? pw->pw_name : "another user", (int)st.st_uid);
    lua_pushliteral(L, "owner");
    return 3;
  }
  if ((st.st_mode & S_IWOTH) || ((st.st_mode & S_IWGRP) && st.st_gid != getegid())) {
    char mode[8];
    snprintf(mode, sizeof mode, "%o", (unsigned)(st.st_mode & 07777));
    luaL_pushfail(L);
    lua_pushfstring(L, "refusing to read %s: it decides what sgrun writes and others can change it (mode %s); "
                    "check its content, then run: chmod go-w %s", path, mode, path);
    lua_pushliteral(L, "mode");
    return 3;
  }
  return read_all(L, fd, path);
}

/* read_private(path) -> content | nil, message, kind. For files holding credentials: the
 * checks are made with fstat on the opened descriptor (a symlink is judged by its target, and
 * nothing can be swapped between check and read). kind: "missing", "owner" (neither the
 * invoking user's nor root's), "mode" (group or others have any permission, except a root-owned
 * file only the user's own group may read), "size" (over PRIVATE_FILE_MAX), "read". */
static int l_read_private(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  int fd = open_regular(L, path, &st);
  if (fd < 0) return 3;
  if (st.st_uid != geteuid() && st.st_uid != 0) {
    struct passwd *pw = getpwuid(st.st_uid);
    luaL_pushfail(L);
    lua_pushfstring(L, "refusing to read %s: it holds credentials and belongs to %s%s (uid %d), not to "
                    "you or root, so that user could change what you connect with; use a profile file of "
                    "your own (chown it, or set SGRUN_PROFILES)", path, pw ? "user " : "",
                    pw ? pw->pw_name : "another user", (int)st.st_uid);
    lua_pushliteral(L, "owner");
    return 3;
  }
  /* One layout with group permission is private all the same: a root-owned file that only the
   * invoking user's own group may read, which is how Kubernetes mounts a Secret for a non-root
   * pod (fsGroup: mode 0440, group = the pod's group). Root itself never gets this exception. */
  int root_given_to_own_group = st.st_uid == 0 && geteuid() != 0 && st.st_gid == getegid() &&
                                (st.st_mode & 077) == 040;
  if ((st.st_mode & 077) && !root_given_to_own_group) {
    luaL_pushfail(L);
    char mode[8];
    snprintf(mode, sizeof mode, "%o", (unsigned)(st.st_mode & 07777));
    lua_pushfstring(L, "refusing to read %s: it holds credentials and others can read it (mode %s); "
                    "run: chmod 600 %s", path, mode, path);
    lua_pushliteral(L, "mode");
    return 3;
  }
  /* a profile file is a few lines per account: one this large is not one, and reading it whole
   * would take as much memory */
  if (st.st_size > PRIVATE_FILE_MAX) {
    luaL_pushfail(L);
    lua_pushfstring(L, "refusing to read %s: it is %I bytes, more than a profile file holds (at most %d); "
                    "check that SGRUN_PROFILES names the profile file", path, (lua_Integer)st.st_size,
                    PRIVATE_FILE_MAX);
    lua_pushliteral(L, "size");
    return 3;
  }
  return read_all(L, fd, path);
}

/* lock_dir() -> the checked lock directory, or nil and why. */
static int l_lock_dir(lua_State *L) {
  char dir[PATH_MAX], err[512];
  if (sg_lock_dir(dir, sizeof dir, err, sizeof err) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushstring(L, dir);
  return 1;
}

/* try_lock(file) -> true | false (another process holds it) | nil, message. An exclusive,
 * non-blocking flock on an open Lua file: it lasts until the file is closed or the process
 * ends (a SIGKILL included), which is how a roll-out's journal tells a live run from a dead one. */
static int l_try_lock(lua_State *L) {
  luaL_Stream *p = (luaL_Stream *)luaL_checkudata(L, 1, LUA_FILEHANDLE);
  if (p->closef == NULL) return luaL_error(L, "try_lock: the file is closed");
  if (flock(fileno(p->f), LOCK_EX | LOCK_NB) == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (errno == EWOULDBLOCK) {
    lua_pushboolean(L, 0);
    return 1;
  }
  int err = errno;
  luaL_pushfail(L);
  lua_pushfstring(L, "flock: %s", strerror(err));
  return 2;
}

#define LOCK_METATABLE "sg.fs.lock"

/* lock(name) -> lock | false, holder | nil, message: the lock file `name` (a plain name) in the
 * checked lock directory, taken without waiting and without following a symlink, as the
 * playbook's lock is (runtime/lock.c); false when another process of this user holds it, with
 * "pid N since TIME (lock PATH)". Held until lock:release(), the lock is collected, or the process
 * ends (the kernel drops it then, a SIGKILL included). */
static int l_lock(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  /* made first: a failure to allocate it must not leak a taken lock */
  int *held = (int *)lua_newuserdatauv(L, sizeof *held, 0);
  *held = -1;
  luaL_setmetatable(L, LOCK_METATABLE);
  char holder[PATH_MAX + 512];
  long stale_pid;
  int fd = sg_lock_file(name, holder, sizeof holder, &stale_pid);
  if (fd >= 0) {
    *held = fd;
    return 1;
  }
  if (fd == -1) lua_pushboolean(L, 0);
  else luaL_pushfail(L);
  lua_pushstring(L, holder);
  return 2;
}

/* lock:release(): lets the lock go (once; later calls do nothing). */
static int l_lock_release(lua_State *L) {
  int *held = (int *)luaL_checkudata(L, 1, LOCK_METATABLE);
  sg_unlock_file(*held);
  *held = -1;
  return 0;
}

/* is_at(file, path) -> whether path still names the open Lua file (same device and inode): a
 * lock taken on a file that was removed or replaced meanwhile guards nothing at that path. */
static int l_is_at(lua_State *L) {
  luaL_Stream *p = (luaL_Stream *)luaL_checkudata(L, 1, LUA_FILEHANDLE);
  const char *path = luaL_checkstring(L, 2);
  if (p->closef == NULL) return luaL_error(L, "is_at: the file is closed");
  struct stat open_st, path_st;
  lua_pushboolean(L, fstat(fileno(p->f), &open_st) == 0 && stat(path, &path_st) == 0 &&
                         open_st.st_dev == path_st.st_dev && open_st.st_ino == path_st.st_ino);
  return 1;
}

/* list(dir) -> array of the names in dir, in the file system's order (no "." and "..") | nil, message. */
static int l_list(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct owned *owner = push_owner(L);
  DIR *d = owner->dir = opendir(path);
  if (!d) {
    int err = errno;
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, strerror(err));
    return 2;
  }
  lua_newtable(L);
  lua_Integer n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    lua_pushstring(L, e->d_name);
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

int luaopen__sg_fs(lua_State *L) {
  static const luaL_Reg fns[] = {{"fsync", l_fsync},
                                 {"mode", l_mode},
                                 {"create_private", l_create_private},
                                 {"write_temp", l_write_temp},
                                 {"read_private", l_read_private},
                                 {"read_regular", l_read_regular},
                                 {"lock_dir", l_lock_dir},
                                 {"try_lock", l_try_lock},
                                 {"lock", l_lock},
                                 {"is_at", l_is_at},
                                 {"list", l_list},
                                 {NULL, NULL}};
  static const luaL_Reg lock_methods[] = {{"release", l_lock_release},
                                          {"__gc", l_lock_release},
                                          {"__close", l_lock_release},
                                          {NULL, NULL}};
  static const luaL_Reg owned_methods[] = {{"__close", l_owned_close},
                                           {"__gc", l_owned_close},
                                           {NULL, NULL}};
  luaL_newmetatable(L, OWNED_METATABLE);
  luaL_setfuncs(L, owned_methods, 0);
  lua_pop(L, 1);
  luaL_newmetatable(L, LOCK_METATABLE);
  luaL_setfuncs(L, lock_methods, 0);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newlib(L, fns);
  return 1;
}
