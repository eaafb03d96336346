#ifndef SG_REPL_H
#define SG_REPL_H
#include <lua.h>

/* The interactive loop (lua.c's algorithm, GNU Readline for editing and history); each line runs
 * as a task. Returns the exit code. */
int sg_repl_run(lua_State *L);

#endif
