/* _sg.task: the scheduler's primitives for Lua; sg.task (stdlib) builds all/timeout on them. */
#include <lauxlib.h>
#include <lua.h>

#include <signal.h>

#include "loop.h"
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

/* graceful(on): the first SIGINT/SIGTERM is left to Lua (see sg_sched_set_graceful). */
static int l_graceful(lua_State *L) {
  sg_sched_set_graceful(lua_toboolean(L, 1));
  return 0;
}

/* signal([take]): "SIGINT" or "SIGTERM" when one arrived (nil otherwise); take clears it. */
static int l_signal(lua_State *L) {
  int sig = sg_loop_peek_signal();
  /* under --every/--cron a SIGTERM is the schedule's: the run goes on to its end, then the
   * schedule stops; a playbook that took it would end its run early and keep the schedule going */
  if (sig == SIGTERM && sg_sched_term_is_graceful()) sig = 0;
  else if (sig && lua_toboolean(L, 1)) sg_loop_take_signal();
  if (sig == SIGINT) lua_pushliteral(L, "SIGINT");
  else if (sig == SIGTERM) lua_pushliteral(L, "SIGTERM");
  else lua_pushnil(L);
  return 1;
}

/* on_signal(fn|nil): fn(name, count) for the signals of a graceful() run (sg_sched_set_on_signal). */
static int l_on_signal(lua_State *L) {
  if (!lua_isnil(L, 1)) luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  sg_sched_set_on_signal(L);
  return 0;
}

/* context([value]): the running task's context; with an argument, sets it. */
static int l_context(lua_State *L) {
  if (lua_gettop(L) == 0) return sg_sched_push_context(L);
  lua_settop(L, 1);
  return sg_sched_set_context(L);
}

int luaopen__sg_task(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"spawn", l_spawn}, {"wait", sg_task_wait_lua}, {"cancel", l_cancel}, {"sleep", sg_sched_sleep_lua},
      {"now", l_now},     {"status", l_status},       {"graceful", l_graceful},
      {"signal", l_signal}, {"on_signal", l_on_signal}, {"context", l_context}, {NULL, NULL},
  };
  luaL_newlib(L, fns);
  return 1;
}
