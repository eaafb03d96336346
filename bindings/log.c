/* _sg.log: playbooks write to the run log (text or JSON lines, see runtime/log.h). */
#include <lauxlib.h>
#include <lua.h>

#include "log.h"

#define MAX_FIELDS 16

/* write(level, event, message?, fields?): field values are written with tostring. */
static int l_write(lua_State *L) {
  const char *level = luaL_checkstring(L, 1);
  const char *event = luaL_checkstring(L, 2);
  const char *message = luaL_optstring(L, 3, NULL);
  const char *fields[2 * MAX_FIELDS];
  int n = 0;
  lua_settop(L, 4);
  if (!lua_isnil(L, 4)) {
    luaL_checktype(L, 4, LUA_TTABLE);
    luaL_checkstack(L, 2 * MAX_FIELDS + 4, NULL);
    lua_pushnil(L);
    while (lua_next(L, 4)) {
      if (n < MAX_FIELDS && lua_type(L, -2) == LUA_TSTRING) {
        /* the name and the value's string stay on the stack below the traversal key */
        fields[2 * n] = lua_tostring(L, -2);
        fields[2 * n + 1] = luaL_tolstring(L, -1, NULL);
        lua_remove(L, -2);
        lua_pushvalue(L, -2);
        n++;
      } else {
        lua_pop(L, 1);
      }
    }
  }
  sg_log_write(level, event, message, n, fields);
  return 0;
}

static int l_format(lua_State *L) {
  lua_pushstring(L, sg_log_format() == SG_LOG_JSON ? "json" : "text");
  return 1;
}

int luaopen__sg_log(lua_State *L) {
  static const luaL_Reg fns[] = {{"write", l_write}, {"format", l_format}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
