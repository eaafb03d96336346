/* _sg.task: the scheduler's primitives for Lua; sg.task (stdlib) builds all/timeout on them. */
#include <lauxlib.h>
#include <lua.h>

#include "scheduler.h"

static int l_spawn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  sg_task_spawn(L, lua_gettop(L) - 1);
  return 1;
}

static int l_cancel(lua_State *L) {
  sg_task_cancel(L, sg_task_check(L, 1));
  return 0;
}

static int l_now(lua_State *L) {
  lua_pushnumber(L, sg_now());
  return 1;
}

static int l_status(lua_State *L) {
  lua_pushstring(L, sg_task_state_name(sg_task_state(sg_task_check(L, 1))));
  return 1;
}

int luaopen__sg_task(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"spawn", l_spawn}, {"wait", sg_task_wait_lua}, {"cancel", l_cancel}, {"sleep", sg_sched_sleep_lua},
      {"now", l_now},     {"status", l_status},       {NULL, NULL},
  };
  luaL_newlib(L, fns);
  return 1;
}
