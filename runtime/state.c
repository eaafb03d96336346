#include "state.h"
#include "embedded.h"
#include "ext.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>

int luaopen_cjson(lua_State *L);
int luaopen_cjson_safe(lua_State *L);

const char *sg_tostring_error(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) == LUA_TSTRING) {
    lua_pushvalue(L, idx);
  } else if (luaL_callmeta(L, idx, "__tostring") && lua_type(L, -1) == LUA_TSTRING) {
    /* the string produced by __tostring is on the stack */
  } else {
    if (lua_gettop(L) > idx && !lua_isstring(L, -1)) lua_pop(L, 1);
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, idx));
  }
  return lua_tostring(L, -1);
}

int sg_msghandler(lua_State *L) {
  const char *msg = sg_tostring_error(L, 1);
  luaL_traceback(L, L, msg, 1);
  return 1;
}

static int load_embedded(lua_State *L, const struct sg_embedded *m) {
  if (luaL_loadbuffer(L, m->source, m->size, m->chunkname) != LUA_OK)
    return lua_error(L);
  lua_pushstring(L, m->chunkname + 1);
  return 2;
}

/* package.searchers entry: development tree first (SGRUN_DEV_ROOT), then the embedded copy. */
static int search_sgrun(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const char *root = getenv("SGRUN_DEV_ROOT");
  if (root && *root) {
    static const char *const dirs[] = {"stdlib", "sim"};
    luaL_Buffer rel;
    luaL_buffinit(L, &rel);
    luaL_addgsub(&rel, name, ".", "/");
    luaL_pushresult(&rel);
    const char *relpath = lua_tostring(L, -1);
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
      static const char *const forms[] = {"%s/%s/%s.lua", "%s/%s/%s/init.lua"};
      for (size_t j = 0; j < 2; j++) {
        const char *path = lua_pushfstring(L, forms[j], root, dirs[i], relpath);
        FILE *f = fopen(path, "r");
        if (f) {
          fclose(f);
          if (luaL_loadfile(L, path) != LUA_OK) return lua_error(L);
          lua_pushstring(L, path);
          return 2;
        }
        lua_pop(L, 1);
      }
    }
    lua_pop(L, 1);
  }
  for (const struct sg_embedded *m = sg_embedded_modules; m->module; m++)
    if (strcmp(m->module, name) == 0) return load_embedded(L, m);
  lua_pushfstring(L, "no embedded sgrun module '%s'", name);
  return 1;
}

/* package.preload entry of a binding that lives in libsgrun_net.so. */
static int open_ext_binding(lua_State *L) {
  const char *symbol = lua_tostring(L, lua_upvalueindex(1));
  char err[512];
  lua_CFunction open = (lua_CFunction)sg_ext_symbol(symbol, err, sizeof err);
  if (!open) return luaL_error(L, "%s", err);
  return open(L);
}

static int open_state(lua_State *L) {
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_cjson);
  lua_setfield(L, -2, "cjson");
  lua_pushcfunction(L, luaopen_cjson_safe);
  lua_setfield(L, -2, "cjson.safe");
  for (const struct sg_binding *b = sg_bindings; b->module; b++) {
    if (b->open) {
      lua_pushcfunction(L, b->open);
    } else {
      lua_pushstring(L, b->ext_symbol);
      lua_pushcclosure(L, open_ext_binding, 1);
    }
    lua_setfield(L, -2, b->module);
  }
  lua_pop(L, 1);

  /* insert our searcher right after the preload searcher */
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchers");
  lua_Integer n = (lua_Integer)luaL_len(L, -1);
  for (lua_Integer i = n; i >= 2; i--) {
    lua_rawgeti(L, -1, i);
    lua_rawseti(L, -2, i + 1);
  }
  lua_pushcfunction(L, search_sgrun);
  lua_rawseti(L, -2, 2);
  lua_pop(L, 2);
  return 0;
}

static const char loads_native[] =
    "a dry run loads no C code and starts no other program, either of which could send writes past it";
/* debug.getupvalue(load, ...) hands back the load that takes bytecode; getregistry, sethook and
 * the rest reach the same insides */
static const char reaches_inside[] =
    "the debug library reaches inside sgrun's own functions, where a dry run's guards live";

static int refuse_under_dry_run(lua_State *L) {
  return luaL_error(L, "%s is off under --dry-run: %s; run without --dry-run to use it",
                    lua_tostring(L, lua_upvalueindex(1)), lua_tostring(L, lua_upvalueindex(2)));
}

/* Replaces table.field (the table at the top of the stack) with a function that refuses. */
static void refuse_field(lua_State *L, const char *table, const char *field, const char *why) {
  lua_pushfstring(L, "%s.%s", table, field);
  lua_pushstring(L, why);
  lua_pushcclosure(L, refuse_under_dry_run, 2);
  lua_setfield(L, -2, field);
}

static void refuse_global_field(lua_State *L, const char *table, const char *field) {
  lua_getglobal(L, table);
  refuse_field(L, table, field, loads_native);
  lua_pop(L, 1);
}

/* Every debug function but traceback, which error messages use. The library's table is also
 * package.loaded.debug, so require "debug" gets the same. */
static void refuse_debug(lua_State *L) {
  lua_getglobal(L, "debug");
  lua_newtable(L); /* the names first: fields are replaced after the traversal */
  lua_pushnil(L);
  while (lua_next(L, -3)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "traceback") != 0) {
      lua_pushvalue(L, -1);
      lua_rawseti(L, -3, (lua_Integer)luaL_len(L, -3) + 1);
    }
  }
  for (lua_Integer i = 1, n = (lua_Integer)luaL_len(L, -1); i <= n; i++) {
    lua_rawgeti(L, -1, i);
    const char *name = lua_tostring(L, -1);
    lua_pushvalue(L, -3);
    refuse_field(L, "debug", name, reaches_inside);
    lua_pop(L, 2);
  }
  lua_pop(L, 2);
}

/* io.open under --dry-run: a /proc file opened for writing is closed again and refused, since
 * /proc/self/mem writes into sgrun's own memory, where the dry run's switch lives. Judged on the
 * opened descriptor (its file system and access mode), so a link to it or a mode spelt another
 * way does not get round it. The original io.open is upvalue 1. */
static int open_unless_proc_write(lua_State *L) {
  int nargs = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, nargs, LUA_MULTRET);
  luaL_Stream *stream = (luaL_Stream *)luaL_testudata(L, 1, LUA_FILEHANDLE);
  if (!stream || !stream->f) return lua_gettop(L);
  int fd = fileno(stream->f), flags = fcntl(fd, F_GETFL);
  struct statfs fs;
  if (flags >= 0 && (flags & O_ACCMODE) == O_RDONLY) return lua_gettop(L);
  if (flags >= 0 && fstatfs(fd, &fs) == 0 && fs.f_type != PROC_SUPER_MAGIC) return lua_gettop(L);
  /* on /proc, or not known to be elsewhere */
  lua_getfield(L, 1, "close");
  lua_pushvalue(L, 1);
  lua_call(L, 1, 0);
  return luaL_error(L, "writing to /proc is off under --dry-run: /proc/self/mem reaches sgrun's own memory, "
                       "where a dry run's guards live; run without --dry-run to use it");
}

/* Text chunks only: crafted Lua bytecode is a known way to run native code in the Lua VM. load,
 * loadfile, dofile and the Lua-file searcher (open_state's third) are replaced by versions that
 * pass mode "t". */
static const char text_only[] =
    "local raw_load, raw_loadfile, searchpath, select, error = load, loadfile, package.searchpath, select, error\n"
    "load = function(chunk, name, _, ...)\n"
    "  if select('#', ...) > 0 then return raw_load(chunk, name, 't', ...) end\n"
    "  return raw_load(chunk, name, 't')\n"
    "end\n"
    "loadfile = function(file, _, ...)\n"
    "  if select('#', ...) > 0 then return raw_loadfile(file, 't', ...) end\n"
    "  return raw_loadfile(file, 't')\n"
    "end\n"
    "dofile = function(file)\n"
    "  local f = assert(raw_loadfile(file, 't'))\n"
    "  return f()\n"
    "end\n"
    "local io_open, io_output, type = io.open, io.output, type\n"
    "io.output = function(file)\n"
    "  if type(file) == 'string' then file = assert(io_open(file, 'w')) end\n"
    "  return io_output(file)\n"
    "end\n"
    "package.searchers[3] = function(name)\n"
    "  local path, err = searchpath(name, package.path)\n"
    "  if not path then return err end\n"
    "  local f, lerr = raw_loadfile(path, 't')\n"
    "  if not f then error(string.format(\"error loading module '%s' from file '%s':\\n\\t%s\", name, path, lerr), 2) end\n"
    "  return f, path\n"
    "end\n";

int sg_state_forbid_native(lua_State *L) {
  refuse_global_field(L, "package", "loadlib");
  refuse_global_field(L, "os", "execute");
  refuse_global_field(L, "io", "popen");
  refuse_debug(L);
  /* io.output(name) opens through the library's own, unwrapped open: given a name, it goes
   * through the wrapped io.open first */
  lua_getglobal(L, "io");
  lua_getfield(L, -1, "open");
  lua_pushcclosure(L, open_unless_proc_write, 1);
  lua_setfield(L, -2, "open");
  lua_pop(L, 1);
  /* keep preload, sgrun's own and the Lua-file searcher (open_state's order); drop the C ones */
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchers");
  for (lua_Integer i = (lua_Integer)luaL_len(L, -1); i > 3; i--) {
    lua_pushnil(L);
    lua_rawseti(L, -2, i);
  }
  lua_pop(L, 2);
  if (luaL_loadbuffer(L, text_only, sizeof text_only - 1, "=(dry run)") != LUA_OK) return lua_error(L);
  lua_call(L, 0, 0);
  return 0;
}

lua_State *sg_state_new(void) {
  lua_State *L = luaL_newstate();
  if (!L) return NULL;
  lua_pushcfunction(L, open_state);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    lua_close(L);
    return NULL;
  }
  return L;
}
