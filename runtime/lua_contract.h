#ifndef SG_LUA_CONTRACT_H
#define SG_LUA_CONTRACT_H
/* The C-to-Lua contract: every name the C runtime uses to reach Lua code, and the values it
 * hands over, in one place. A module renamed on the Lua side is renamed here; nothing under
 * runtime/ spells these strings itself. */

/* Modules the runtime requires. */
#define SG_LUA_COROUTINE "sg._coroutine" /* called once by sg_sched_init with the yield sentinel */
#define SG_LUA_REPL "sg.repl"            /* the REPL's helpers: completion, banner, run_and_print */
#define SG_LUA_SIM "sgsim"               /* the emulator core: sgsim.new(opts) */
#define SG_LUA_HTTP "_sg.http"           /* the HTTP binding: dry_run(true) for --dry-run */

/* package.loaded keys the runtime fills itself. */
#define SG_LUA_OPTIONS "sg.options" /* what the command line asked of playbooks */

/* Registry keys. */
#define SG_LUA_TASK_MT "sg.task" /* the metatable of task handles (luaL_newmetatable) */

/* The yield sentinel: a blocked task yields the light userdata &sg_yield_sentinel (only its
 * address matters); sg._coroutine passes it outwards through the user's own coroutines. */
extern char sg_yield_sentinel;

#endif
