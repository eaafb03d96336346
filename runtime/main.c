/* sgrun's command line: lua-compatible options, each chunk run as a task on the event loop. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ext.h"
#include "repl.h"
#include "scheduler.h"
#include "sim_server.h"
#include "state.h"

#define EXIT_USAGE 2

static const char *progname = "sgrun";

/* The emulator lives in libsgrun_net.so; these resolve its entry points. */
static void *ext_or_exit(const char *name) {
  char err[512];
  void *sym = sg_ext_symbol(name, err, sizeof err);
  if (!sym) {
    fprintf(stderr, "%s: %s\n", progname, err);
    exit(1);
  }
  return sym;
}

static void usage(FILE *out) {
  fprintf(out,
          "usage: %s [options] [script [args]]\n"
          "       %s sim [--help]       run the emulator of the five providers' APIs\n"
          "Runs a Lua 5.4 playbook with the sgrun library (require \"sg\").\n"
          "Options:\n"
          "  -e CODE            run CODE\n"
          "  -l NAME            require library NAME into global NAME\n"
          "  -i                 enter the interactive REPL after running the script\n"
          "  -v, --version      print the version\n"
          "  -                  run standard input\n"
          "  --                 stop handling options\n"
          "  --sim              start the emulator in-process and point every provider at it\n"
          "  --dry-run          send no request other than reads (GET, HEAD, OPTIONS)\n"
          "  -h, --help         print this help\n"
          "With no script: the REPL on a terminal, else standard input is run.\n"
          "Exit codes: 0 success, 1 error, 2 usage, 130 interrupted; playbooks may use others.\n"
          "Environment: SGRUN_DEV_ROOT=DIR loads stdlib/ and sim/ Lua modules from a source\n"
          "tree instead of the copies built in.\n",
          progname, progname);
}

static int usage_error(const char *what, const char *arg) {
  fprintf(stderr, "%s: %s%s%s\nTry '%s --help' for the options.\n", progname, what,
          arg ? " " : "", arg ? arg : "", progname);
  return EXIT_USAGE;
}

struct options {
  int script;      /* index of the script in argv, 0 if none */
  int interactive; /* -i */
  int has_exec;    /* some -e or -l */
  int sim;
  int dry_run;
};

/* Returns 0 or an exit code for a usage error / an early exit (help, version). */
static int parse_args(int argc, char **argv, struct options *o, int *done) {
  int i;
  *done = 0;
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-') break;
    if (strcmp(a, "-") == 0) break; /* stdin as the script */
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    if (strcmp(a, "-e") == 0 || strcmp(a, "-l") == 0) {
      if (++i >= argc) return usage_error(a[1] == 'e' ? "'-e' needs code to run" : "'-l' needs a library name", NULL);
      o->has_exec = 1;
    } else if (strcmp(a, "-i") == 0) {
      o->interactive = 1;
    } else if (strcmp(a, "-v") == 0 || strcmp(a, "--version") == 0) {
      printf("sgrun %s (%s)\n", SGRUN_VERSION, LUA_RELEASE);
      *done = 1;
      return 0;
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage(stdout);
      *done = 1;
      return 0;
    } else if (strcmp(a, "--sim") == 0) {
      o->sim = 1;
    } else if (strcmp(a, "--dry-run") == 0) {
      o->dry_run = 1;
    } else {
      return usage_error("unknown option", a);
    }
  }
  o->script = i < argc ? i : 0;
  return 0;
}

/* arg as in lua: arg[0] the script, positive indices its arguments, negative ones the rest. */
static void create_arg_table(lua_State *L, int argc, char **argv, int script) {
  lua_createtable(L, argc > script ? argc - script - 1 : 0, script + 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

/* Runs the function below its nargs arguments as a task to the end. Returns the exit code. */
static int run_task(lua_State *L, int nargs) {
  sg_task_spawn(L, nargs);
  enum sg_task_state state = sg_sched_run(L, sg_task_check(L, -1));
  int code = 0;
  if (state == SG_FAILED) {
    const char *tb = sg_task_push_error(L, -1);
    fprintf(stderr, "%s: %s\n", progname, tb ? tb : sg_tostring_error(L, -1));
    fflush(stderr);
    code = 1;
  }
  if (sg_loop_peek_signal()) {
    int sig = sg_loop_take_signal();
    fprintf(stderr, "%s: interrupted by signal %d\n", progname, sig);
    code = 128 + sig;
  }
  lua_settop(L, 0);
  return code;
}

static int report_load_error(lua_State *L) {
  fprintf(stderr, "%s: %s\n", progname, lua_tostring(L, -1));
  lua_pop(L, 1);
  return 1;
}

static int run_chunk(lua_State *L, const char *code, const char *name) {
  if (luaL_loadbuffer(L, code, strlen(code), name) != LUA_OK) return report_load_error(L);
  return run_task(L, 0);
}

static int run_require(lua_State *L, const char *spec) {
  /* -l mod: mod = require "mod"; -l g=mod: g = require "mod" (as in lua 5.4.8) */
  const char *eq = strchr(spec, '=');
  const char *mod = eq ? eq + 1 : spec;
  lua_pushfstring(L, "%s = require(...)", eq ? lua_pushlstring(L, spec, (size_t)(eq - spec)) : mod);
  if (eq) lua_remove(L, -2);
  const char *code = lua_tostring(L, -1);
  int status = luaL_loadbuffer(L, code, strlen(code), "=(command line)");
  lua_remove(L, -2);
  if (status != LUA_OK) return report_load_error(L);
  lua_pushstring(L, mod);
  return run_task(L, 1);
}

static int run_script(lua_State *L, int argc, char **argv, int script) {
  const char *fname = strcmp(argv[script], "-") == 0 ? NULL : argv[script];
  if (fname && strcmp(argv[script - 1], "--") == 0 && strcmp(fname, "-") == 0) fname = "-";
  if (luaL_loadfile(L, fname) != LUA_OK) return report_load_error(L);
  int n = argc - script - 1;
  luaL_checkstack(L, n, "too many arguments to the script");
  for (int i = script + 1; i < argc; i++) lua_pushstring(L, argv[i]);
  return run_task(L, n);
}

/* The lines given with -e and -l, in order. */
static int run_exec_args(lua_State *L, char **argv, int stop) {
  for (int i = 1; i < stop; i++) {
    int code = 0;
    if (strcmp(argv[i], "--") == 0) break;
    if (strcmp(argv[i], "-e") == 0) code = run_chunk(L, argv[++i], "=(command line)");
    else if (strcmp(argv[i], "-l") == 0) code = run_require(L, argv[++i]);
    if (code) return code;
  }
  return 0;
}

static int enable_dry_run(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "_sg.http");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "dry_run");
  lua_pushboolean(L, 1);
  lua_call(L, 1, 0);
  lua_pop(L, 1);
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "sim") == 0) {
    int (*sim_main)(int, char **) = (int (*)(int, char **))ext_or_exit("sg_sim_main");
    return sim_main(argc - 1, argv + 1);
  }

  struct options o = {0};
  int done;
  int code = parse_args(argc, argv, &o, &done);
  if (code || done) return code;

  struct sg_sim *sim = NULL;
  void (*sim_stop)(struct sg_sim *) = NULL;
  if (o.sim) {
    char err[256];
    struct sg_sim_options so = {.task_delay_ms = -1, .quiet = 1};
    struct sg_sim *(*sim_start)(const struct sg_sim_options *, char *, size_t) =
        (struct sg_sim * (*)(const struct sg_sim_options *, char *, size_t)) ext_or_exit("sg_sim_start");
    void (*sim_export_env)(struct sg_sim *) = (void (*)(struct sg_sim *))ext_or_exit("sg_sim_export_env");
    sim_stop = (void (*)(struct sg_sim *))ext_or_exit("sg_sim_stop");
    sim = sim_start(&so, err, sizeof err);
    if (!sim) {
      fprintf(stderr, "%s: could not start the emulator: %s\n", progname, err);
      return 1;
    }
    sim_export_env(sim);
  }

  lua_State *L = sg_state_new();
  if (!L) {
    fprintf(stderr, "%s: cannot create the Lua state: out of memory\n", progname);
    return 1;
  }
  sg_loop *loop = sg_loop_default();
  sg_sched_init(L, loop);
  if (o.dry_run) {
    lua_pushcfunction(L, enable_dry_run);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) code = report_load_error(L);
  }
  create_arg_table(L, argc, argv, o.script);

  if (!code) code = run_exec_args(L, argv, o.script ? o.script : argc);
  if (!code && o.script) code = run_script(L, argc, argv, o.script);
  if (!code && (o.interactive || (!o.script && !o.has_exec && isatty(STDIN_FILENO))))
    code = sg_repl_run(L);
  else if (!code && !o.script && !o.has_exec) {
    if (luaL_loadfile(L, NULL) != LUA_OK) code = report_load_error(L);
    else code = run_task(L, 0);
  }

  sg_sched_shutdown(L);
  lua_close(L);
  sg_loop_free(loop);
  if (sim) sim_stop(sim);
  return code;
}
