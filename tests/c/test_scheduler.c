/* The scheduler driven from C: tasks interleave on sleeps, errors keep their traceback,
 * cancellation releases waits, and a deadlock is detected instead of hanging. */
#include <string.h>

#include "check.h"
#include "scheduler.h"
#include "state.h"

static lua_State *L;

/* Compiles code into a task and runs the loop until it ends. */
static enum sg_task_state run(const char *code) {
  lua_settop(L, 0);
  if (luaL_loadstring(L, code) != LUA_OK) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    return SG_FAILED;
  }
  sg_task_spawn(L, 0);
  return sg_sched_run(L, sg_task_check(L, 1));
}

static void test_tasks_interleave(void) {
  CHECK(run("local task = require '_sg.task'\n"
            "trace = ''\n"
            "local a = task.spawn(function() for i = 1, 3 do trace = trace .. 'a' task.sleep(0.01) end end)\n"
            "local b = task.spawn(function() for i = 1, 3 do trace = trace .. 'b' task.sleep(0.01) end end)\n"
            "task.wait(a) task.wait(b)") == SG_DONE);
  lua_getglobal(L, "trace");
  CHECK(strcmp(lua_tostring(L, -1), "ababab") == 0);
}

static void test_results_are_kept(void) {
  CHECK(run("return 1, nil, 'three'") == SG_DONE);
  CHECK(sg_task_push_results(L, 1) == 3);
  CHECK(lua_tointeger(L, -3) == 1 && lua_isnil(L, -2) && strcmp(lua_tostring(L, -1), "three") == 0);
}

static void test_failure_has_a_traceback(void) {
  CHECK(run("local function inner() error('deep failure') end\n"
            "require('_sg.task').sleep(0)\n"
            "inner()") == SG_FAILED);
  const char *tb = sg_task_push_error(L, 1);
  CHECK(strstr(lua_tostring(L, -1), "deep failure") != NULL);
  CHECK(tb && strstr(tb, "stack traceback") && strstr(tb, "inner"));
}

static void test_cancel_releases_sleep(void) {
  CHECK(run("local task = require '_sg.task'\n"
            "local t = task.spawn(function() task.sleep(10) end)\n"
            "task.sleep(0.01)\n"
            "task.cancel(t)\n"
            "assert(task.status(t) == 'cancelled')") == SG_DONE);
  /* the cancelled 10 s sleep left no timer behind */
  CHECK(sg_loop_pending(sg_sched_loop()) == 0);
}

static void test_deadlock_is_detected(void) {
  CHECK(run("local task = require '_sg.task'\n"
            "local a\n"
            "local b = task.spawn(function() task.sleep(0) task.wait(a) end)\n"
            "a = task.spawn(function() task.wait(b) end)\n"
            "task.wait(a)") == SG_FAILED);
  sg_task_push_error(L, 1);
  CHECK(strstr(lua_tostring(L, -1), "deadlock") != NULL);
  sg_sched_shutdown(L);
}

/* A wait woken with sg_sched_wake_keep_cancel and cancelled before the task runs again still
 * has its cancel hook called (an HTTP request's handle goes back at once, not at the next
 * collection); once the task has run again, it is not. */
static int hook_calls;
static sg_task *parked;
static void count_hook(void *ctx) {
  (void)ctx;
  hook_calls++;
}
static int parked_k(lua_State *L, int status, lua_KContext ctx) {
  (void)L, (void)status, (void)ctx;
  return 0;
}
static int park(lua_State *L) {
  parked = sg_sched_current();
  return sg_sched_block(L, count_hook, NULL, parked_k, 0);
}
static int wake_parked(lua_State *L) {
  (void)L;
  sg_sched_wake_keep_cancel(parked);
  return 0;
}

static void test_cancel_after_a_keep_cancel_wake(void) {
  lua_register(L, "park", park);
  lua_register(L, "wake_parked", wake_parked);
  hook_calls = 0;
  CHECK(run("local task = require '_sg.task'\n"
            "local t = task.spawn(function() park() end)\n"
            "task.sleep(0)\n"
            "wake_parked()\n"
            "task.cancel(t)\n"
            "assert(task.status(t) == 'cancelled')") == SG_DONE);
  CHECK(hook_calls == 1);
  hook_calls = 0;
  CHECK(run("local task = require '_sg.task'\n"
            "local t = task.spawn(function() park() return 'ran' end)\n"
            "task.sleep(0)\n"
            "wake_parked()\n"
            "assert(task.wait(t))") == SG_DONE);
  CHECK(hook_calls == 0);
}

/* A stdlib module the scheduler needs that does not load is an error message, not a panic. */
static void test_broken_stdlib_module_is_an_error(sg_loop *loop) {
  lua_State *B = sg_state_new();
  CHECK(luaL_dostring(B, "package.preload['sg._coroutine'] = function() error('broken on purpose') end") ==
        LUA_OK);
  CHECK(sg_sched_init(B, loop) != LUA_OK);
  const char *msg = lua_tostring(B, -1);
  CHECK(msg && strstr(msg, "sg._coroutine") && strstr(msg, "broken on purpose"));
  lua_close(B);
}

int main(void) {
  L = sg_state_new();
  sg_loop *loop = sg_loop_default();
  test_broken_stdlib_module_is_an_error(loop);
  CHECK(sg_sched_init(L, loop) == LUA_OK);
  test_tasks_interleave();
  test_results_are_kept();
  test_failure_has_a_traceback();
  test_cancel_releases_sleep();
  test_cancel_after_a_keep_cancel_wake();
  test_deadlock_is_detected();
  sg_sched_shutdown(L);
  lua_close(L);
  sg_loop_free(loop);
  return check_report();
}
