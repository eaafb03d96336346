#include "repl.h"

#include <lauxlib.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "lua_contract.h"
#include "privatedir.h"
#include "scheduler.h"
#include "state.h"

#define PROMPT "sg> "
#define PROMPT_MORE "sg>> "
#define HISTORY_LINES 1000

enum read_result { READ_LINE, READ_EOF, READ_INTERRUPTED };

static lua_State *repl_L;
static char *history_file;
static char *got_line;
static int got_done;

/* Calls sg.repl.NAME with one string argument under pcall; leaves its result on the stack
 * (nil on error). The REPL's helpers are Lua: completion, banner, history filter. */
static void call_repl_helper(lua_State *L, const char *name, const char *arg) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, SG_LUA_REPL);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    lua_pop(L, 1);
    lua_pushnil(L);
    return;
  }
  lua_getfield(L, -1, name);
  lua_remove(L, -2);
  if (arg) lua_pushstring(L, arg);
  if (lua_pcall(L, arg ? 1 : 0, 1, 0) != LUA_OK) {
    lua_pop(L, 1);
    lua_pushnil(L);
  }
}

/* readline's completion: the candidates come from sg.repl.complete(word). */
static char **complete(const char *text, int start, int end) {
  (void)start;
  (void)end;
  rl_attempted_completion_over = 1; /* never fall back to file names */
  rl_completion_append_character = '\0'; /* readline resets it before every completion */
  lua_State *L = repl_L;
  call_repl_helper(L, "complete", text);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    return NULL;
  }
  size_t n = (size_t)luaL_len(L, -1);
  if (n == 0) {
    lua_pop(L, 1);
    return NULL;
  }
  /* readline's layout: [0] the common prefix, then the candidates, then NULL */
  char **matches = malloc((n + 2) * sizeof *matches);
  if (!matches) {
    lua_pop(L, 1);
    return NULL;
  }
  size_t common = SIZE_MAX, made = 0;
  for (size_t i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, (lua_Integer)i);
    matches[i] = strdup(lua_tostring(L, -1) ? lua_tostring(L, -1) : "");
    lua_pop(L, 1);
    if (!matches[i]) break;
    made = i;
    size_t k = 0;
    while (matches[1][k] && matches[1][k] == matches[i][k]) k++;
    if (k < common) common = k;
  }
  lua_pop(L, 1);
  matches[0] = made == n ? strndup(matches[1], common) : NULL;
  if (!matches[0]) { /* out of memory: no completion rather than a crash */
    for (size_t i = 1; i <= made; i++) free(matches[i]);
    free(matches);
    return NULL;
  }
  matches[n + 1] = NULL;
  return matches;
}

static void on_line(char *line) {
  got_line = line;
  got_done = 1;
  rl_callback_handler_remove();
}

static void on_stdin(void *ud, int fd, int events) {
  (void)ud;
  (void)fd;
  (void)events;
  rl_callback_read_char();
}

/* Reads one line through readline's callback interface, so that the event loop (and with it
 * Ctrl-C, as a signal-pipe event) keeps running while the prompt waits. */
static enum read_result read_line(const char *prompt, char **line) {
  sg_loop *loop = sg_sched_loop();
  got_line = NULL;
  got_done = 0;
  rl_callback_handler_install(prompt, on_line);
  if (sg_loop_watch(loop, STDIN_FILENO, SG_READ, on_stdin, NULL) != 0) {
    /* stdin cannot be polled (a regular file): read it the plain way */
    rl_callback_handler_remove();
    *line = readline(prompt);
    return *line ? READ_LINE : READ_EOF;
  }
  enum read_result result = READ_LINE;
  while (!got_done) {
    sg_loop_run_once(loop, -1);
    int sig = sg_loop_take_signal();
    if (sig == SIGINT) {
      /* like a shell: drop what was typed and show a fresh prompt */
      rl_free_line_state();
      rl_callback_sigcleanup();
      rl_callback_handler_remove();
      fputs("^C\n", stdout);
      result = READ_INTERRUPTED;
      break;
    }
    if (sig == SIGTERM) {
      rl_callback_handler_remove();
      result = READ_EOF;
      break;
    }
  }
  sg_loop_watch(loop, STDIN_FILENO, 0, NULL, NULL);
  if (result == READ_LINE && !got_line) result = READ_EOF;
  *line = got_line;
  return result;
}

/* A chunk that looks like it carries a credential is not kept in the history file, in none of
 * its lines: the filter sees the whole chunk, because a credential typed on a continuation line
 * ("{ api_key =" then the value) is only recognisable next to the line before it. The lines are
 * kept one by one, as typed. */
static void remember(lua_State *L, const char *chunk) {
  if (!*chunk) return;
  call_repl_helper(L, "should_remember", chunk);
  int keep = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (!keep) return;
  int added = 0;
  for (const char *p = chunk; *p;) {
    const char *end = strchr(p, '\n');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len > 0) {
      char *line = strndup(p, len);
      if (!line) break; /* out of memory: keep fewer lines rather than fail the session */
      add_history(line);
      free(line);
      added++;
    }
    p += len;
    if (*p) p++;
  }
  if (history_file && added) append_history(added, history_file);
}

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

/* Reads a whole chunk (more lines while it is incomplete) and leaves it compiled on the stack,
 * or a syntax error message. The chunk goes to the history once it is complete (or abandoned):
 * only then can the filter see all of it. */
static enum read_result read_chunk(lua_State *L, int *status) {
  char *line;
  enum read_result r = read_line(PROMPT, &line);
  if (r != READ_LINE) return r;
  if (try_expression(L, line) == LUA_OK) {
    remember(L, line);
    free(line);
    *status = LUA_OK;
    return READ_LINE;
  }
  lua_pushstring(L, line);
  free(line);
  for (;;) {
    const char *code = lua_tostring(L, -1);
    *status = luaL_loadbuffer(L, code, strlen(code), "=stdin");
    if (!incomplete(L, *status)) {
      remember(L, lua_tostring(L, -2));
      lua_remove(L, -2);
      return READ_LINE;
    }
    r = read_line(PROMPT_MORE, &line);
    if (r != READ_LINE) {
      /* Ctrl-C or Ctrl-D inside a chunk: what was typed is kept as it was before (line by line
       * as typed), under the same filter */
      remember(L, lua_tostring(L, -1));
      lua_pop(L, 1);
      return r;
    }
    lua_pushliteral(L, "\n");
    lua_pushstring(L, line);
    free(line);
    lua_concat(L, 3);
  }
}

/* The chunk runs as a task that prints what it returns (sg.repl.run_and_print). */
static void run_chunk(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, SG_LUA_REPL);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    lua_settop(L, 0);
    return;
  }
  lua_getfield(L, -1, "run_and_print");
  lua_remove(L, -2);
  lua_insert(L, -2);
  sg_task_spawn(L, 1);
  enum sg_task_state state = sg_sched_run(L, sg_task_check(L, -1));
  int sig = sg_loop_take_signal();
  if (state == SG_FAILED) {
    const char *tb = sg_task_push_error(L, -1);
    fprintf(stderr, "%s\n", tb ? tb : sg_tostring_error(L, -1));
  } else if (state == SG_CANCELLED && sig) {
    fputs("cancelled\n", stderr);
  }
  lua_settop(L, 0);
}

/* $SGRUN_HISTORY, else $XDG_STATE_HOME/sgrun/history, else ~/.local/state/sgrun/history. */
static char *history_path(void) {
  const char *env = getenv("SGRUN_HISTORY");
  if (env) return *env ? strdup(env) : NULL;
  char dir[4096];
  const char *state = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
  if (state && *state) snprintf(dir, sizeof dir, "%s/sgrun", state);
  else if (home && *home) snprintf(dir, sizeof dir, "%s/.local/state/sgrun", home);
  else return NULL;
  for (char *p = dir + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    mkdir(dir, 0700);
    *p = '/';
  }
  mkdir(dir, 0700);
  size_t len = strlen(dir) + sizeof "/history";
  char *path = malloc(len);
  if (path) snprintf(path, len, "%s/history", dir);
  return path;
}

/* Whether the history file may be read and written: a regular file of this user's (made,
 * private, when absent) in a directory nobody else can swap it in. readline opens it by name and
 * follows symlinks: a symlink or device (SGRUN_HISTORY=/dev/null, or a link another user planted)
 * would have its target re-moded, appended to and truncated. Says why when it may not. */
static int private_history(const char *path) {
  if (strcmp(path, "/dev/null") == 0) return 0; /* the usual way to ask for no history */
  const char *why = NULL;
  char dir[4096];
  sg_parent_dir(path, dir, sizeof dir);
  struct stat ds, st;
  /* judged before anything is made there: whoever owns the directory, or may write it without
   * the sticky bit, could replace the file by a link */
  if (stat(dir, &ds) == 0 && ((ds.st_uid != geteuid() && ds.st_uid != 0) ||
                              ((ds.st_mode & (S_IWGRP | S_IWOTH)) && !(ds.st_mode & S_ISVTX))))
    why = "its directory is another user's or writable by others";
  if (!why) {
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
    if (fd < 0) why = errno == ELOOP ? "it is a symbolic link" : strerror(errno);
    else if (fstat(fd, &st) != 0) why = strerror(errno);
    else if (!S_ISREG(st.st_mode)) why = "it is not a regular file";
    else if (st.st_uid != geteuid()) why = "it belongs to another user";
    else if (fchmod(fd, 0600) != 0) why = strerror(errno);
    if (fd >= 0) close(fd);
  }
  if (why) {
    fprintf(stderr, "sgrun: history off: %s: %s; set SGRUN_HISTORY to a file of yours (or to "
            "nothing for no history)\n", path, why);
    return 0;
  }
  return 1;
}

int sg_repl_run(lua_State *L) {
  repl_L = L;
  /* the terminal is the session: when it hangs up there is nobody to answer (and a REPL that
   * outlived it under ASan's leak check was left spinning at exit) */
  sg_loop_default_hangup();
  rl_catch_signals = 0; /* SIGINT is the event loop's: see read_line */
  rl_readline_name = "sgrun";
  rl_basic_word_break_characters = " \t\n\"\\'><=;+-*/%^~#{}()[],";
  rl_attempted_completion_function = complete;
  history_file = history_path();
  if (history_file && !private_history(history_file)) {
    free(history_file);
    history_file = NULL;
  }
  if (history_file) {
    read_history(history_file);
    history_truncate_file(history_file, HISTORY_LINES);
  }
  call_repl_helper(L, "start", NULL);
  if (lua_isstring(L, -1)) puts(lua_tostring(L, -1));
  lua_settop(L, 0);
  for (;;) {
    int status = LUA_OK;
    enum read_result r = read_chunk(L, &status);
    if (r == READ_EOF) break;
    if (r == READ_INTERRUPTED) continue;
    if (status != LUA_OK) {
      fprintf(stderr, "%s\n", lua_tostring(L, -1));
      lua_settop(L, 0);
      continue;
    }
    run_chunk(L);
  }
  putchar('\n');
  free(history_file);
  history_file = NULL;
  clear_history();
  return 0;
}
