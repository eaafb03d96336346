#include "scheduler.h"

#include <lauxlib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua_contract.h"
#include "state.h"


/* Task userdata slots: the coroutine, then the outcome (results table or error value), then the
 * traceback of a failure, then the task's context (inherited by the tasks it spawns). */
enum { UV_THREAD = 1, UV_OUTCOME, UV_TRACEBACK, UV_CONTEXT, UV_COUNT = UV_CONTEXT };

struct waiter;

struct sg_task {
  lua_State *co;
  int anchor; /* registry ref that keeps an unfinished task alive */
  enum sg_task_state state;
  int nargs; /* arguments waiting on the coroutine's stack for the first resume */
  int observed;
  unsigned long id;
  sg_cancel_fn cancel;
  void *cancel_ctx;
  sg_task *parent, *child, *next_sibling, *prev_sibling;
  sg_task *next_ready;
  sg_task *next_live, *prev_live;
  struct waiter *waiters;
};

/* One wait() on a task; lives as a userdata on the waiting task's stack. */
struct waiter {
  sg_task *task, *target;
  sg_timer *timer;
  int timed_out;
  struct waiter *next;
};

static struct {
  lua_State *L;
  sg_loop *loop;
  sg_task *ready_head, *ready_tail;
  sg_task *volatile current; /* read by the signal handler, as are the next two */
  sg_task *live;
  unsigned long next_id;
  volatile sig_atomic_t graceful_term;
  volatile sig_atomic_t graceful; /* sg.rollout: the first SIGINT/SIGTERM is Lua's to handle */
  volatile sig_atomic_t signals_seen; /* signals since graceful was turned on */
  int signals_told;           /* how many of them on_signal was told about */
  int on_signal;              /* registry ref: Lua's on_signal(name, count) for a graceful run */
} sched = {.on_signal = LUA_NOREF};

char sg_yield_sentinel;

sg_task *sg_sched_current(void) { return sched.current; }
sg_loop *sg_sched_loop(void) { return sched.loop; }
enum sg_task_state sg_task_state(const sg_task *t) { return t->state; }

sg_task *sg_task_check(lua_State *L, int idx) { return luaL_checkudata(L, idx, SG_LUA_TASK_MT); }

static void push_handle(lua_State *L, sg_task *t) { lua_rawgeti(L, LUA_REGISTRYINDEX, t->anchor); }

static void enqueue(sg_task *t) {
  t->next_ready = NULL;
  if (sched.ready_tail) sched.ready_tail->next_ready = t;
  else sched.ready_head = t;
  sched.ready_tail = t;
}

static void dequeue(sg_task *t) {
  sg_task *prev = NULL;
  for (sg_task *p = sched.ready_head; p; prev = p, p = p->next_ready) {
    if (p != t) continue;
    if (prev) prev->next_ready = p->next_ready;
    else sched.ready_head = p->next_ready;
    if (sched.ready_tail == p) sched.ready_tail = prev;
    return;
  }
}

void sg_sched_wake(sg_task *t) {
  if (t->state != SG_BLOCKED) return;
  t->state = SG_READY;
  t->cancel = NULL;
  t->cancel_ctx = NULL;
  enqueue(t);
}

void sg_sched_wake_keep_cancel(sg_task *t) {
  if (t->state != SG_BLOCKED) return;
  t->state = SG_READY;
  enqueue(t);
}

static void unlink_waiter(struct waiter *w) {
  if (!w->target) return;
  for (struct waiter **p = &w->target->waiters; *p; p = &(*p)->next) {
    if (*p == w) {
      *p = w->next;
      break;
    }
  }
  w->target = NULL;
  if (w->timer) {
    sg_timer_stop(sched.loop, w->timer);
    w->timer = NULL;
  }
}

static void detach_from_parent(sg_task *t) {
  if (!t->parent) return;
  if (t->prev_sibling) t->prev_sibling->next_sibling = t->next_sibling;
  else t->parent->child = t->next_sibling;
  if (t->next_sibling) t->next_sibling->prev_sibling = t->prev_sibling;
  t->parent = t->next_sibling = t->prev_sibling = NULL;
}

/* Records the end of t: outcome is at the top of L (popped), then waiters are woken and the
 * anchor dropped. t may be freed by the collector once this returns. */
static void finish(lua_State *L, sg_task *t, enum sg_task_state state, const char *traceback) {
  push_handle(L, t);
  lua_insert(L, -2);
  lua_setiuservalue(L, -2, UV_OUTCOME);
  if (traceback) {
    lua_pushstring(L, traceback);
    lua_setiuservalue(L, -2, UV_TRACEBACK);
  }
  lua_pop(L, 1);
  t->state = state;
  t->cancel = NULL;
  detach_from_parent(t);
  while (t->child) detach_from_parent(t->child);
  if (t->prev_live) t->prev_live->next_live = t->next_live;
  else sched.live = t->next_live;
  if (t->next_live) t->next_live->prev_live = t->prev_live;
  while (t->waiters) {
    struct waiter *w = t->waiters;
    sg_task *waiting = w->task;
    unlink_waiter(w);
    sg_sched_wake(waiting);
  }
  int anchor = t->anchor;
  t->anchor = LUA_NOREF;
  luaL_unref(L, LUA_REGISTRYINDEX, anchor);
}

sg_task *sg_task_spawn(lua_State *L, int nargs) {
  luaL_checktype(L, -(nargs + 1), LUA_TFUNCTION);
  sg_task *t = lua_newuserdatauv(L, sizeof *t, UV_COUNT);
  memset(t, 0, sizeof *t);
  luaL_setmetatable(L, SG_LUA_TASK_MT);
  t->co = lua_newthread(L);
  lua_setiuservalue(L, -2, UV_THREAD);
  lua_rotate(L, -(nargs + 2), 1); /* handle below the function and its arguments */
  lua_xmove(L, t->co, nargs + 1);
  t->nargs = nargs;
  t->state = SG_READY;
  t->id = ++sched.next_id;
  lua_pushvalue(L, -1);
  t->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
  t->parent = sched.current;
  if (t->parent) {
    /* the context goes down to every task the parent spawns (a roll-out's write scope reaches
     * the concurrent writes an adapter starts) */
    push_handle(L, t->parent);
    lua_getiuservalue(L, -1, UV_CONTEXT);
    lua_setiuservalue(L, -3, UV_CONTEXT);
    lua_pop(L, 1);
    t->next_sibling = t->parent->child;
    if (t->next_sibling) t->next_sibling->prev_sibling = t;
    t->parent->child = t;
  }
  t->next_live = sched.live;
  if (sched.live) sched.live->prev_live = t;
  sched.live = t;
  enqueue(t);
  return t;
}

static void resume(lua_State *L, sg_task *t) {
  lua_State *co = t->co;
  int nres = 0;
  /* the continuation takes over what the wait held (sg_sched_wake_keep_cancel) */
  t->cancel = NULL;
  t->cancel_ctx = NULL;
  t->state = SG_RUNNING;
  sched.current = t;
  int status = lua_resume(co, L, t->nargs, &nres);
  sched.current = NULL;
  t->nargs = 0;
  if (status == LUA_YIELD) {
    lua_pop(co, nres);
    if (t->state == SG_BLOCKED) return;
    lua_pushliteral(co, "coroutine.yield() called at the top level of a task; only coroutines "
                        "made with coroutine.create/wrap can yield values");
    status = LUA_ERRRUN;
  }
  if (t->cancel) { /* an error escaped between blocking and yielding: release the wait */
    t->cancel(t->cancel_ctx);
    t->cancel = NULL;
  }
  if (status == LUA_OK) {
    luaL_checkstack(L, nres + 2, "too many results");
    lua_xmove(co, L, nres);
    lua_createtable(L, nres, 1);
    lua_insert(L, -(nres + 1));
    int results = lua_gettop(L) - nres;
    for (int i = nres; i >= 1; i--) lua_rawseti(L, results, i);
    lua_pushinteger(L, nres);
    lua_setfield(L, -2, "n");
    finish(L, t, SG_DONE, NULL);
  } else {
    lua_xmove(co, L, 1);
    const char *msg = sg_tostring_error(L, -1);
    luaL_traceback(L, co, msg, 0);
    const char *tb = lua_tostring(L, -1);
    lua_rotate(L, -3, 2); /* error value back on top, strings below */
    finish(L, t, SG_FAILED, tb);
    lua_pop(L, 2);
  }
}

/* Ends t (and its live children) without resuming it: releases what it waits on. */
static void stop_task(lua_State *L, sg_task *t, enum sg_task_state state, const char *why) {
  for (sg_task *c = t->child; c;) {
    sg_task *next = c->next_sibling;
    if (c == sched.current) detach_from_parent(c);
    else stop_task(L, c, SG_CANCELLED, "cancelled");
    c = next;
  }
  if ((t->state == SG_BLOCKED || t->state == SG_READY) && t->cancel) t->cancel(t->cancel_ctx);
  if (t->state == SG_READY) dequeue(t);
  t->observed = state == SG_CANCELLED;
  lua_pushstring(L, why);
  finish(L, t, state, state == SG_FAILED ? why : NULL);
}

void sg_task_cancel(lua_State *L, sg_task *t) {
  if (t->state >= SG_DONE) return;
  if (t == sched.current) luaL_error(L, "a task cannot cancel itself; return or raise an error");
  stop_task(L, t, SG_CANCELLED, "cancelled");
}

int sg_sched_block(lua_State *L, sg_cancel_fn cancel, void *ctx, lua_KFunction k,
                   lua_KContext kctx) {
  sg_task *t = sched.current;
  if (!t || !lua_isyieldable(L))
    return luaL_error(L, "this call waits for the network or a timer, so it must run inside a "
                         "task: not while a module loads, nor inside a metamethod, table.sort "
                         "comparator or string.gsub callback");
  if (t->cancel) t->cancel(t->cancel_ctx);
  t->state = SG_BLOCKED;
  t->cancel = cancel;
  t->cancel_ctx = ctx;
  lua_pushlightuserdata(L, &sg_yield_sentinel);
  return lua_yieldk(L, 1, kctx, k);
}

static int interrupt_fired; /* the hook below stopped a task since sg_sched_interrupted() last said */

static void on_interrupt(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  interrupt_fired = 1;
  luaL_error(L, "interrupted!");
}

int sg_sched_interrupted(void) {
  int fired = interrupt_fired;
  interrupt_fired = 0;
  return fired;
}

int sg_sched_term_is_graceful(void) { return sched.graceful_term; }

/* Runs in the signal handler: lua_sethook is safe there (lua.c does the same), and it stops
 * Lua code that computes without ever waiting. */
static void arm_interrupt_hook(int sig) {
  if (sig == SIGTERM && sched.graceful_term) return;
  if (sched.graceful && sched.signals_seen++ == 0) return;
  int mask = LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT;
  if (sched.current) lua_sethook(sched.current->co, on_interrupt, mask, 1);
}

void sg_sched_set_graceful_term(int on) { sched.graceful_term = on; }

void sg_sched_set_graceful(int on) {
  sched.graceful = on;
  sched.signals_seen = 0;
  sched.signals_told = 0;
}

void sg_sched_set_on_signal(lua_State *L) {
  luaL_unref(L, LUA_REGISTRYINDEX, sched.on_signal);
  sched.on_signal = luaL_ref(L, LUA_REGISTRYINDEX); /* nil gives LUA_REFNIL: none */
}

/* Tells Lua about the signals of a graceful run: from the loop, outside any task, never in the
 * signal handler. The first lets it say what happens now; the second (count 2, also when both
 * came at once) ends the run right after this call, so it prints what is known. */
static void tell_signals(lua_State *L) {
  int seen = sched.signals_seen;
  if (!sched.graceful || seen == sched.signals_told) return;
  sched.signals_told = seen;
  if (sched.on_signal == LUA_NOREF || sched.on_signal == LUA_REFNIL) return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, sched.on_signal);
  lua_pushstring(L, sg_loop_peek_signal() == SIGTERM ? "SIGTERM" : "SIGINT");
  lua_pushinteger(L, seen < 2 ? seen : 2);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    fprintf(stderr, "sgrun: reporting the interruption failed: %s\n", sg_tostring_error(L, -1));
    lua_pop(L, 1);
  }
}

int sg_sched_push_context(lua_State *L) {
  if (!sched.current) {
    lua_pushnil(L);
    return 1;
  }
  push_handle(L, sched.current);
  lua_getiuservalue(L, -1, UV_CONTEXT);
  lua_remove(L, -2);
  return 1;
}

int sg_sched_set_context(lua_State *L) {
  if (!sched.current) return luaL_error(L, "a task's context can only be set inside a task");
  push_handle(L, sched.current);
  lua_insert(L, -2);
  lua_setiuservalue(L, -2, UV_CONTEXT);
  lua_pop(L, 1);
  return 0;
}

/* A signal that must stop the running task now. */
static int stop_requested(void) {
  int sig = sg_loop_peek_signal();
  return sig && !(sig == SIGTERM && sched.graceful_term) && !(sched.graceful && sched.signals_seen < 2);
}

enum sg_task_state sg_sched_run(lua_State *L, sg_task *root) {
  while (root->state < SG_DONE) {
    while (sched.ready_head && !stop_requested()) {
      sg_task *t = sched.ready_head;
      sched.ready_head = t->next_ready;
      if (!sched.ready_head) sched.ready_tail = NULL;
      resume(L, t);
    }
    tell_signals(L); /* also when the signal's hook just ended the root task */
    if (root->state >= SG_DONE) break;
    if (stop_requested()) {
      sg_task_cancel(L, root);
      return SG_CANCELLED;
    }
    if (!sched.ready_head && !sg_loop_pending(sched.loop)) {
      stop_task(L, root, SG_FAILED,
                "deadlock: every task is waiting and nothing can wake them (a task waits for "
                "itself, or for a task that waits for it)");
      break;
    }
    sg_loop_run_once(sched.loop, sched.ready_head ? 0 : -1);
  }
  return root->state;
}

int sg_task_push_results(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  sg_task *t = sg_task_check(L, idx);
  t->observed = 1;
  lua_getiuservalue(L, idx, UV_OUTCOME);
  int n = 0;
  if (lua_getfield(L, -1, "n") == LUA_TNUMBER) n = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  luaL_checkstack(L, n, "too many results");
  int tbl = lua_gettop(L);
  for (int i = 1; i <= n; i++) lua_rawgeti(L, tbl, i);
  lua_remove(L, tbl);
  return n;
}

const char *sg_task_push_error(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  sg_task *t = sg_task_check(L, idx);
  t->observed = 1;
  lua_getiuservalue(L, idx, UV_OUTCOME);
  lua_getiuservalue(L, idx, UV_TRACEBACK);
  const char *tb = lua_tostring(L, -1);
  lua_pop(L, 1); /* the string stays alive in the userdata */
  return tb;
}

/* Pushes what wait() returns for a finished task at idx: true, results... | false, err, traceback. */
static int push_outcome(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  sg_task *t = sg_task_check(L, idx);
  if (t->state == SG_DONE) {
    lua_pushboolean(L, 1);
    return 1 + sg_task_push_results(L, idx);
  }
  lua_pushboolean(L, 0);
  sg_task_push_error(L, idx);
  lua_getiuservalue(L, idx, UV_TRACEBACK);
  return 3;
}

static void wait_timed_out(void *ud) {
  struct waiter *w = ud;
  w->timer = NULL;
  w->timed_out = 1;
  sg_task *waiting = w->task;
  unlink_waiter(w);
  sg_sched_wake(waiting);
}

static void cancel_wait(void *ud) { unlink_waiter(ud); }

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  struct waiter *w = lua_touserdata(L, 3);
  if (w->timed_out) {
    luaL_pushfail(L);
    lua_pushliteral(L, "timeout");
    return 2;
  }
  return push_outcome(L, 1);
}

int sg_task_wait_lua(lua_State *L) {
  sg_task *target = sg_task_check(L, 1);
  double timeout = luaL_optnumber(L, 2, -1);
  lua_settop(L, 2);
  if (target->state >= SG_DONE) return push_outcome(L, 1);
  if (target == sched.current) return luaL_error(L, "a task cannot wait for itself");
  if (!sched.current || !lua_isyieldable(L))
    return sg_sched_block(L, NULL, NULL, NULL, 0); /* raises the explanatory error */
  struct waiter *w = lua_newuserdatauv(L, sizeof *w, 0);
  memset(w, 0, sizeof *w);
  w->task = sched.current;
  w->target = target;
  w->next = target->waiters;
  target->waiters = w;
  if (timeout >= 0) w->timer = sg_timer_start(sched.loop, timeout, wait_timed_out, w);
  return sg_sched_block(L, cancel_wait, w, wait_k, 0);
}

struct sleeper {
  sg_task *task;
  sg_timer *timer;
};

static void sleep_done(void *ud) {
  struct sleeper *s = ud;
  s->timer = NULL;
  sg_sched_wake(s->task);
}

static void cancel_sleep(void *ud) {
  struct sleeper *s = ud;
  sg_timer_stop(sched.loop, s->timer);
  s->timer = NULL;
}

static int sleep_k(lua_State *L, int status, lua_KContext ctx) {
  (void)L;
  (void)status;
  (void)ctx;
  return 0;
}

int sg_sched_sleep_lua(lua_State *L) {
  double seconds = luaL_checknumber(L, 1);
  luaL_argcheck(L, seconds >= 0, 1, "expected a duration of 0 seconds or more");
  if (!sched.current || !lua_isyieldable(L)) return sg_sched_block(L, NULL, NULL, NULL, 0);
  struct sleeper *s = lua_newuserdatauv(L, sizeof *s, 0);
  s->task = sched.current;
  s->timer = sg_timer_start(sched.loop, seconds, sleep_done, s);
  if (!s->timer) return luaL_error(L, "sleep: out of memory");
  return sg_sched_block(L, cancel_sleep, s, sleep_k, 0);
}

void sg_sched_shutdown(lua_State *L) {
  while (sched.live) {
    sg_task *t = sched.live;
    if (t == sched.current) break;
    stop_task(L, t, SG_CANCELLED, "cancelled");
  }
}

static const char *const state_names[] = {"ready", "running", "waiting", "done", "failed",
                                          "cancelled"};

const char *sg_task_state_name(enum sg_task_state state) { return state_names[state]; }

static int task_status(lua_State *L) {
  lua_pushstring(L, state_names[sg_task_check(L, 1)->state]);
  return 1;
}

static int task_cancel(lua_State *L) {
  sg_task_cancel(L, sg_task_check(L, 1));
  return 0;
}

static int task_tostring(lua_State *L) {
  sg_task *t = sg_task_check(L, 1);
  lua_pushfstring(L, "task %d (%s)", (int)t->id, state_names[t->state]);
  return 1;
}

/* A failure nobody waited for would vanish silently: report it when the handle goes away. */
static int task_gc(lua_State *L) {
  sg_task *t = sg_task_check(L, 1);
  if (t->state == SG_FAILED && !t->observed) {
    lua_getiuservalue(L, 1, UV_TRACEBACK);
    fprintf(stderr, "sgrun: a task failed and nothing waited for it: %s\n",
            lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
    lua_pop(L, 1);
  }
  return 0;
}

/* The part of sg_sched_init that can fail (loading sg._coroutine), run under lua_pcall. */
static int install_coroutine_bridge(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, SG_LUA_COROUTINE);
  lua_call(L, 1, 1);
  lua_pushlightuserdata(L, &sg_yield_sentinel);
  lua_call(L, 1, 0);
  return 0;
}

int sg_sched_init(lua_State *L, sg_loop *loop) {
  sched.L = L;
  sched.loop = loop;
  sg_loop_catch_signals(loop, arm_interrupt_hook);
  static const luaL_Reg methods[] = {{"wait", sg_task_wait_lua}, {"cancel", task_cancel},
                                     {"status", task_status},    {NULL, NULL}};
  luaL_newmetatable(L, SG_LUA_TASK_MT);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, task_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushcfunction(L, task_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  /* Route user coroutines' resumes through the bridge that passes our yields outwards. */
  lua_pushcfunction(L, install_coroutine_bridge);
  int status = lua_pcall(L, 0, 0, 0);
  if (status != LUA_OK) {
    lua_pushfstring(L, "cannot load the library module %s: %s", SG_LUA_COROUTINE,
                    lua_isstring(L, -1) ? lua_tostring(L, -1) : "(error object is not a string)");
    lua_remove(L, -2);
  }
  return status;
}
