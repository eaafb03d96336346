#include "repl.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "scheduler.h"
#include "state.h"

#define PROMPT "sg> "
#define PROMPT_MORE "sg>> "

/* lua.c's test: a syntax error at <eof> means the chunk is incomplete, so read another line. */
static int incomplete(lua_State *L, int status) {
  if (status != LUA_ERRSYNTAX) return 0;
  size_t len;
  const char *msg = lua_tolstring(L, -1, &len);
  static const char mark[] = "<eof>";
  size_t marklen = sizeof mark - 1;
  if (len >= marklen && strcmp(msg + len - marklen, mark) == 0) {
    lua_pop(L, 1);
    return 1;
  }
  return 0;
}

/* Compiles "return LINE" first so bare expressions print; "=expr" is the old spelling. */
static int try_expression(lua_State *L, const char *line) {
  if (line[0] == '=') line++;
  const char *code = lua_pushfstring(L, "return %s;", line);
  int status = luaL_loadbuffer(L, code, strlen(code), "=stdin");
  lua_remove(L, -2);
  if (status != LUA_OK) lua_pop(L, 1);
  return status;
}

/* Reads a whole chunk (several lines when incomplete) and leaves it compiled on the stack.
 * Returns -1 at end of input. */
static int read_chunk(lua_State *L) {
  char *line = readline(PROMPT);
  if (!line) return -1;
  if (*line) add_history(line);
  if (try_expression(L, line) == LUA_OK) {
    free(line);
    return LUA_OK;
  }
  luaL_Buffer b;
  lua_pushstring(L, line);
  free(line);
  for (;;) {
    const char *code = lua_tostring(L, -1);
    int status = luaL_loadbuffer(L, code, strlen(code), "=stdin");
    if (!incomplete(L, status)) {
      lua_remove(L, -2);
      return status;
    }
    char *more = readline(PROMPT_MORE);
    if (!more) return status;
    if (*more) add_history(more);
    luaL_buffinit(L, &b);
    luaL_addvalue(&b);
    luaL_addchar(&b, '\n');
    luaL_addstring(&b, more);
    free(more);
    luaL_pushresult(&b);
  }
}

/* The chunk runs as a task that prints what it returns with sg.pretty. */
static int run_line(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "sg.repl");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "run_and_print");
  lua_remove(L, -2);
  lua_insert(L, -2);
  sg_task_spawn(L, 1);
  enum sg_task_state state = sg_sched_run(L, sg_task_check(L, -1));
  if (state == SG_FAILED) {
    const char *tb = sg_task_push_error(L, -1);
    fprintf(stderr, "%s\n", tb ? tb : sg_tostring_error(L, -1));
  } else if (state == SG_CANCELLED && sg_loop_take_signal()) {
    fprintf(stderr, "cancelled\n");
  }
  lua_settop(L, 0);
  return 0;
}

int sg_repl_run(lua_State *L) {
  printf("sgrun %s (%s); Ctrl-D exits, Ctrl-C cancels the running call\n", SGRUN_VERSION,
         LUA_RELEASE);
  for (;;) {
    sg_loop_take_signal();
    int status = read_chunk(L);
    if (status == -1) break;
    if (status != LUA_OK) {
      fprintf(stderr, "%s\n", lua_tostring(L, -1));
      lua_settop(L, 0);
      continue;
    }
    run_line(L);
  }
  putchar('\n');
  return 0;
}
