#ifndef SG_SCHED_H
#define SG_SCHED_H
/* Tasks: Lua coroutines run by the event loop. A binding that must wait registers what would
 * cancel the wait, then yields through sg_sched_block; a C callback (never Lua) later calls
 * sg_sched_wake, and the scheduler resumes the task at the top of the loop, where the binding's
 * continuation builds its results. Blocking calls work inside pcall and inside user coroutines
 * (coroutine.resume/wrap are wrapped to pass the scheduler's yield outwards). */
#include <lua.h>

#include "loop.h"

typedef struct sg_task sg_task;
typedef void (*sg_cancel_fn)(void *ctx);

enum sg_task_state { SG_READY, SG_RUNNING, SG_BLOCKED, SG_DONE, SG_FAILED, SG_CANCELLED };

/* Sets the scheduler up on L (the main state) over loop. Call once, before any task. Returns
 * LUA_OK, or an error status with the message on top of the stack (a stdlib module that does not
 * load is an error to report, not a panic). */
int sg_sched_init(lua_State *L, sg_loop *loop);
sg_loop *sg_sched_loop(void);

/* Pops a function and nargs arguments from L, pushes the task's handle (a userdata). */
sg_task *sg_task_spawn(lua_State *L, int nargs);
sg_task *sg_task_check(lua_State *L, int idx);
enum sg_task_state sg_task_state(const sg_task *t);
const char *sg_task_state_name(enum sg_task_state state); /* "ready", "waiting", "failed", ... */

/* The task being resumed right now (NULL between tasks). */
sg_task *sg_sched_current(void);

/* Blocks the running task: returns lua_yieldk(...) and must be tail-called by a C function.
 * cancel(ctx) is called if the task is cancelled while it waits; k runs when it is woken.
 * Raises a Lua error when no task can wait here (main thread, require, metamethods). */
int sg_sched_block(lua_State *L, sg_cancel_fn cancel, void *ctx, lua_KFunction k,
                   lua_KContext kctx);

/* Makes a blocked task ready. Safe from any C callback; runs no Lua. */
void sg_sched_wake(sg_task *t);

/* The same, for a wait whose cancel(ctx) still has something to release once woken (a finished
 * request's handle): a task cancelled after it is woken and before it runs again gets it called
 * then, instead of leaving it to the garbage collector. */
void sg_sched_wake_keep_cancel(sg_task *t);

/* Cancels t and its live children: releases what they wait on and fails their waiters with
 * "cancelled". Cancelling the running task is not allowed (raise an error instead). */
void sg_task_cancel(lua_State *L, sg_task *t);

/* Runs the loop until t has finished. Returns its final state; SG_CANCELLED after SIGINT or
 * SIGTERM arrived (sg_loop_take_signal tells which). */
enum sg_task_state sg_sched_run(lua_State *L, sg_task *t);

/* For the finished task whose handle is at idx: pushes its error value and returns its
 * traceback text (NULL for a cancelled task). */
const char *sg_task_push_error(lua_State *L, int idx);

/* For the finished task whose handle is at idx: pushes its results and returns how many. */
int sg_task_push_results(lua_State *L, int idx);

/* Waits on a task from Lua: wait(task [, timeout_seconds]) -> true, results... | false, err | nil, "timeout". */
int sg_task_wait_lua(lua_State *L);

/* Sleep from Lua: sleep(seconds). */
int sg_sched_sleep_lua(lua_State *L);

/* When on (scheduled runs), SIGTERM does not cancel the running task: the run finishes and the
 * caller sees the signal afterwards. SIGINT always cancels. */
void sg_sched_set_graceful_term(int on);
int sg_sched_term_is_graceful(void);

/* 1 when a signal stopped a computing task since the last call (its error is "interrupted!"). */
int sg_sched_interrupted(void);
/* While on, the first SIGINT or SIGTERM does not stop the running task: Lua sees it through
 * _sg.task.signal() and winds down itself; a second one stops the task as usual. */
void sg_sched_set_graceful(int on);

/* Pops a function (or nil) called as f(signal name, count) for the signals of a graceful run,
 * outside any task: count 1 the first, count 2 a second, which then ends the run at once. */
void sg_sched_set_on_signal(lua_State *L);

/* The running task's context (any Lua value; a new task starts with its parent's): push pushes
 * it (nil outside a task), set pops the new one. Lua functions. */
int sg_sched_push_context(lua_State *L);
int sg_sched_set_context(lua_State *L);

/* Cancels every live task (used before the state closes). */
void sg_sched_shutdown(lua_State *L);

#endif
