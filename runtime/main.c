/* sgrun's command line: lua-compatible options, each chunk run as a task on the event loop,
 * once or on a schedule. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lua_contract.h"
#include "ext.h"
#include "log.h"
#include "repl.h"
#include "lock.h"
#include "schedule.h"
#include "scheduler.h"
#include "sim_server.h"
#include "state.h"

#define EXIT_USAGE 2
#define EXIT_LOCKED 75 /* EX_TEMPFAIL: another process is running this playbook */

static const char *progname = "sgrun";

/* --every's upper bound: a longer period is a typo (and overflows no time_t arithmetic) */
#define MAX_EVERY (366.0 * 86400)

static int debug_errors; /* --debug or SGRUN_DEBUG=1: a traceback with every error */

/* os.exit(n) in the script's main task ends the run, not the process at once: it records n here,
 * so that the run unwinds (lock released, emulator state saved) and a schedule goes on. */
static int exit_requested, exit_status;
static sg_task *main_task;
static int on_schedule;

struct options {
  int script;      /* index of the script in argv, 0 if none */
  int interactive; /* -i */
  int has_exec;    /* some -e or -l */
  int sim;
  int sim_tls; /* --tls: the emulator serves HTTPS from its own CA (SGRUN_CA_FILE) */
  int dry_run;
  int json;
  int no_lock;
  const char *lock_name; /* --lock-name: the job's lock key instead of playbook + arguments */
  int debug;              /* tracebacks for every error (--debug or SGRUN_DEBUG=1) */
  const char *profile;
  const char *state_file; /* --state: the emulator's accounts persist in this file */
  long long seed;         /* --seed, used when has_seed */
  int has_seed;
  const char *log_format;
  double every;      /* seconds, 0 when not scheduled this way */
  const char *cron;  /* expression, NULL when not scheduled this way */
  struct sg_cron cron_spec;
};

static void usage(FILE *out) {
  fprintf(out,
          "usage: %s [options] [script [args]]\n"
          "       %s sim [--help]       run the emulator of the five providers' APIs\n"
          "Runs a Lua 5.4 playbook with the sgrun library (require \"sg\").\n"
          "Options:\n"
          "  -e CODE            run CODE\n"
          "  -l NAME            require library NAME into global NAME (-l g=NAME: into g)\n"
          "  -i                 enter the interactive REPL after running the script\n"
          "  -v, --version      print the version\n"
          "  -                  run standard input\n"
          "  --                 stop handling options\n"
          "  --sim              start the emulator in-process and point every provider at it\n"
          "  --dry-run          send no request other than reads (GET, HEAD, OPTIONS)\n"
          "  --json             ask playbooks for machine-readable output (sg.options.json)\n"
          "  --profile NAME     the credentials profile sg.connect uses by default (instead of the\n"
          "                     vendor's environment variables, which it then never reads)\n"
          "  --every DURATION   run the script now and then every DURATION (30s, 5m, 1h30m; 1s to 366d)\n"
          "  --cron \"EXPR\"      run the script at the times of a 5-field cron expression\n"
          "  --log-format FMT   run logs on stderr as 'text' (default) or 'json' (one object a line)\n"
          "  --no-lock          do not take the playbook's lock (see below)\n"
          "  --lock-name NAME   the lock's name (default: the playbook's path and its arguments)\n"
          "  --state FILE       with --sim: load the emulator's accounts from FILE and save them back\n"
          "  --seed N           with --sim: seed the emulator's random choices\n"
          "  --tls              with --sim: the emulator serves HTTPS from a CA of its own, trusted\n"
          "                     through SGRUN_CA_FILE (TLS verified as against a real API)\n"
          "  --debug            print a Lua traceback with every error (also SGRUN_DEBUG=1)\n"
          "  -h, --help         print this help\n"
          "With no script: the REPL on a terminal, else standard input is run.\n"
          "A script run takes a lock (a file in $SGRUN_LOCK_DIR, else /run/sgrun for root and\n"
          "/tmp/sgrun-UID for others; the directory must be yours alone), so two sgrun processes\n"
          "never run the same job (playbook and arguments) at once; a run that finds it taken is\n"
          "skipped (exit 75). On a schedule, a run still going when the next is due makes that\n"
          "one skipped; SIGTERM lets the current run finish, then exits 0; SIGINT interrupts the\n"
          "current run, then exits with its 130.\n"
          "Exit codes: 0 success, 1 error, 2 usage or user error, 3 changes pending or found\n"
          "(dry runs, drift, audit), 75 skipped (locked), 130 interrupted (SIGINT), 143 terminated\n"
          "(SIGTERM); playbooks may use others (os.exit). On a schedule, os.exit(n) ends that run\n"
          "with status n and the schedule goes on.\n"
          "Environment: SGRUN_DEV_ROOT=DIR loads stdlib/ and sim/ Lua modules from a source tree.\n",
          progname, progname);
}

static int usage_error(const char *what, const char *arg) {
  fprintf(stderr, "%s: %s%s%s\nTry '%s --help' for the options.\n", progname, what,
          arg ? " " : "", arg ? arg : "", progname);
  return EXIT_USAGE;
}

/* The emulator lives in libsgrun_net.so; this resolves its entry points. */
static void *ext_or_exit(const char *name) {
  char err[512];
  void *sym = sg_ext_symbol(name, err, sizeof err);
  if (!sym) {
    fprintf(stderr, "%s: %s\n", progname, err);
    exit(1);
  }
  return sym;
}

/* Returns 0 or an exit code; *done is set when there is nothing left to do (help, version). */
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
    const char *value = i + 1 < argc ? argv[i + 1] : NULL;
    int takes_value = 1;
    if (strcmp(a, "-e") == 0 || strcmp(a, "-l") == 0) {
      if (!value) return usage_error(a[1] == 'e' ? "'-e' needs code to run" : "'-l' needs a library name", NULL);
      o->has_exec = 1;
    } else if (strcmp(a, "--profile") == 0) {
      if (!value || !*value) return usage_error("'--profile' needs a profile name", NULL);
      o->profile = value;
    } else if (strcmp(a, "--lock-name") == 0) {
      if (!value || !*value) return usage_error("'--lock-name' needs a name", NULL);
      o->lock_name = value;
    } else if (strcmp(a, "--log-format") == 0) {
      if (!value || (strcmp(value, "text") && strcmp(value, "json")))
        return usage_error("'--log-format' takes 'text' or 'json'", NULL);
      o->log_format = value;
    } else if (strcmp(a, "--every") == 0) {
      o->every = value ? sg_parse_duration(value) : -1;
      /* whole seconds: the schedule keeps time in time_t, where 0.5s would be 0 and spin */
      if (!(o->every >= 1 && o->every <= MAX_EVERY && o->every == (double)(long)o->every))
        return usage_error("'--every' needs a duration of whole seconds from 1s to 366d, such as 30s, 5m or 1h30m, not",
                           value ? value : "nothing");
    } else if (strcmp(a, "--state") == 0) {
      if (!value || !*value) return usage_error("'--state' needs a file name", NULL);
      o->state_file = value;
    } else if (strcmp(a, "--seed") == 0) {
      char *end = NULL;
      errno = 0;
      o->seed = value ? strtoll(value, &end, 10) : 0;
      /* ERANGE: clamped to the largest, every too-large seed would be the same one */
      if (!value || !*value || *end || errno)
        return usage_error("'--seed' needs a whole number (at most 19 digits), not", value ? value : "nothing");
      o->has_seed = 1;
    } else if (strcmp(a, "--cron") == 0) {
      char err[300];
      if (!value) return usage_error("'--cron' needs an expression such as \"*/15 * * * *\"", NULL);
      if (sg_cron_parse(value, &o->cron_spec, err, sizeof err) != 0) return usage_error(err, NULL);
      if (sg_cron_next(&o->cron_spec, time(NULL)) < 0)
        return usage_error("the cron expression matches no time in the next five years:", value);
      o->cron = value;
    } else {
      takes_value = 0;
      if (strcmp(a, "-i") == 0) {
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
      } else if (strcmp(a, "--tls") == 0) {
        o->sim_tls = 1;
      } else if (strcmp(a, "--dry-run") == 0) {
        o->dry_run = 1;
      } else if (strcmp(a, "--json") == 0) {
        o->json = 1;
      } else if (strcmp(a, "--no-lock") == 0) {
        o->no_lock = 1;
      } else if (strcmp(a, "--debug") == 0) {
        o->debug = 1;
      } else {
        return usage_error("unknown option", a);
      }
    }
    i += takes_value;
  }
  o->script = i < argc ? i : 0;
  /* What follows the script is its own, as in lua.c, but these three decide whether and where
   * anything is written: given there by mistake, a playbook that does not look for them would
   * write for real, to real accounts. A playbook that wants such a word takes it after "--". */
  for (int j = o->script ? o->script + 1 : argc; j < argc && strcmp(argv[j], "--") != 0; j++) {
    const char *a = argv[j];
    int n = (int)strcspn(a, "="); /* --dry-run=yes is as much a slip as --dry-run */
    if ((n == 9 && strncmp(a, "--dry-run", 9) == 0) || (n == 5 && strncmp(a, "--sim", 5) == 0) ||
        (n == 9 && strncmp(a, "--profile", 9) == 0)) {
      char what[96];
      snprintf(what, sizeof what, "%.*s is an option of sgrun, not of the playbook: put %.*s before", n, a, n, a);
      return usage_error(what, strcmp(argv[o->script], "-") == 0 ? "the '-'" : "the playbook name");
    }
  }
  if ((o->every > 0 || o->cron) && (!o->script || strcmp(argv[o->script], "-") == 0))
    return usage_error("'--every' and '--cron' need a script file to run", NULL);
  if (o->every > 0 && o->cron) return usage_error("use '--every' or '--cron', not both", NULL);
  if ((o->every > 0 || o->cron) && o->interactive)
    return usage_error("'-i' opens a REPL, which a schedule cannot answer: drop '-i' or the schedule", NULL);
  /* a typo in the name would fail every run, for ever, and a stop would still exit 0 */
  if (o->every > 0 || o->cron) {
    struct stat st;
    const char *why = access(argv[o->script], R_OK) != 0 || stat(argv[o->script], &st) != 0 ? strerror(errno)
                      : S_ISREG(st.st_mode)                                                 ? NULL
                                                                                            : "not a regular file";
    if (why) {
      char what[600];
      snprintf(what, sizeof what, "cannot read the script %.500s (%s): a schedule needs a file it can run",
               argv[o->script], why);
      return usage_error(what, NULL);
    }
  }
  /* a chosen profile is a real account's credentials: they would go to the emulator */
  if (o->sim && o->profile)
    return usage_error("'--sim' connects to the emulator's demo accounts and '--profile' chooses a real "
                       "account's credentials: drop one", NULL);
  if ((o->state_file || o->has_seed || o->sim_tls) && !o->sim)
    return usage_error("'--state', '--seed' and '--tls' set up the emulator: add '--sim'", NULL);
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

/* What the command line asked of playbooks: require "sg.options". */
static void register_options(lua_State *L, const struct options *o) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_createtable(L, 0, 8);
  lua_pushliteral(L, SGRUN_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushboolean(L, o->dry_run);
  lua_setfield(L, -2, "dry_run");
  lua_pushboolean(L, o->json);
  lua_setfield(L, -2, "json");
  lua_pushboolean(L, o->sim);
  lua_setfield(L, -2, "sim");
  if (o->profile) {
    lua_pushstring(L, o->profile);
    lua_setfield(L, -2, "profile");
  }
  lua_pushstring(L, sg_log_format() == SG_LOG_JSON ? "json" : "text");
  lua_setfield(L, -2, "log_format");
  lua_pushboolean(L, o->debug);
  lua_setfield(L, -2, "debug");
  lua_createtable(L, 0, 3); /* which standard streams are terminals: questions, colour, progress */
  lua_pushboolean(L, isatty(STDIN_FILENO));
  lua_setfield(L, -2, "stdin");
  lua_pushboolean(L, isatty(STDOUT_FILENO));
  lua_setfield(L, -2, "stdout");
  lua_pushboolean(L, isatty(STDERR_FILENO));
  lua_setfield(L, -2, "stderr");
  lua_setfield(L, -2, "tty");
  lua_setfield(L, -2, SG_LUA_OPTIONS);
  lua_pop(L, 1);
}

static void report_error(const char *message) {
  if (sg_log_format() == SG_LOG_JSON) sg_log("error", "error", message, NULL);
  else {
    /* a provider's message may carry escape sequences: shown, not obeyed */
    fprintf(stderr, "%s: ", progname);
    sg_write_printable(stderr, message, 1);
    fputc('\n', stderr);
  }
}

/* Error objects (tables with a __tostring, or an integer exit_code such as sg.cli's usage errors)
 * are errors the user can act on: their message is enough, a traceback is only noise. Sets *code
 * to their exit_code, else 1. Plain strings are failures of the code itself. */
static int is_expected_error(lua_State *L, int idx, int *code) {
  idx = lua_absindex(L, idx);
  *code = 1;
  if (lua_type(L, idx) != LUA_TTABLE) return 0;
  lua_pushliteral(L, "exit_code");
  int has_code = lua_rawget(L, idx) == LUA_TNUMBER && lua_isinteger(L, -1);
  if (has_code) *code = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  if (has_code) return 1;
  int has_tostring = luaL_getmetafield(L, idx, "__tostring") != LUA_TNIL;
  if (has_tostring) lua_pop(L, 1);
  return has_tostring;
}

/* Runs the function below its nargs arguments as a task to the end. Returns the exit code. */
static int run_task(lua_State *L, int nargs) {
  main_task = sg_task_spawn(L, nargs);
  enum sg_task_state state = sg_sched_run(L, main_task);
  main_task = NULL;
  int code = 0;
  /* a signal stopped Lua code that was computing: the signal is the news, not its traceback */
  int interrupted = sg_sched_interrupted();
  if (exit_requested) {
    if (state == SG_FAILED) sg_task_push_error(L, -1); /* the unwinding is observed, not reported */
    code = exit_status;
  } else if (state == SG_FAILED) {
    const char *tb = sg_task_push_error(L, -1);
    if (is_expected_error(L, -1, &code) && !debug_errors) tb = NULL;
    if (!interrupted || debug_errors) report_error(tb ? tb : sg_tostring_error(L, -1));
  }
  int sig = sg_loop_peek_signal();
  if (sig == SIGINT || (sig && (state == SG_CANCELLED || interrupted))) {
    sg_loop_take_signal();
    report_error(sig == SIGINT ? "interrupted" : "terminated");
    code = 128 + sig;
  }
  lua_settop(L, 0);
  return code;
}

static int report_load_error(lua_State *L) {
  report_error(lua_tostring(L, -1));
  lua_pop(L, 1);
  return 1;
}

static int run_chunk(lua_State *L, const char *code, const char *name) {
  if (luaL_loadbuffer(L, code, strlen(code), name) != LUA_OK) return report_load_error(L);
  return run_task(L, 0);
}

static int run_require(lua_State *L, const char *spec) {
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

/* "t" under --dry-run: a script given as bytecode could run native code past it */
static const char *chunk_mode;

static int run_script(lua_State *L, int argc, char **argv, int script) {
  const char *fname = strcmp(argv[script], "-") == 0 ? NULL : argv[script];
  if (!fname && strcmp(argv[script - 1], "--") == 0) fname = "-";
  if (luaL_loadfilex(L, fname, chunk_mode) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    if (chunk_mode && msg && strstr(msg, "binary chunk")) {
      report_error("a compiled (binary) Lua script cannot run under --dry-run, which takes source only: "
                   "run the script's source");
      return 2;
    }
    /* a script that cannot be opened is the user's to fix (2); one that does not compile, a bug (1) */
    int unopened = fname && access(fname, R_OK) != 0;
    report_load_error(L);
    return unopened ? 2 : 1;
  }
  int n = argc - script - 1;
  luaL_checkstack(L, n, "too many arguments to the script");
  for (int i = script + 1; i < argc; i++) lua_pushstring(L, argv[i]);
  return run_task(L, n);
}

/* The chunks given with -e and -l, in order. */
static int run_exec_args(lua_State *L, char **argv, int stop) {
  for (int i = 1; i < stop; i++) {
    int code = 0;
    if (strcmp(argv[i], "--") == 0) break;
    if (strcmp(argv[i], "-e") == 0) code = run_chunk(L, argv[++i], "=(command line)");
    else if (strcmp(argv[i], "-l") == 0) code = run_require(L, argv[++i]);
    else if (strcmp(argv[i], "--profile") == 0 || strcmp(argv[i], "--log-format") == 0 ||
             strcmp(argv[i], "--lock-name") == 0 ||
             strcmp(argv[i], "--every") == 0 || strcmp(argv[i], "--cron") == 0)
      i++;
    if (code || exit_requested) return code;
  }
  return 0;
}

static int enable_dry_run(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, SG_LUA_HTTP);
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "dry_run");
  lua_pushboolean(L, 1);
  lua_call(L, 1, 0);
  return sg_state_forbid_native(L);
}

/* os.exit in a script run: records the status and unwinds the run with a sentinel error
 * (upvalue 1) that the pcall/xpcall wrappers below pass on. From a child task outside a schedule
 * it exits at once as Lua's own does, since the main task could go on without it. */
static int run_exit(lua_State *L) {
  int status = 0;
  if (lua_isboolean(L, 1)) status = lua_toboolean(L, 1) ? EXIT_SUCCESS : EXIT_FAILURE;
  else if (!lua_isnoneornil(L, 1)) status = (int)luaL_checkinteger(L, 1);
  if (!on_schedule && sg_sched_current() != main_task) {
    fflush(NULL);
    exit(status);
  }
  exit_requested = 1;
  exit_status = status;
  lua_pushvalue(L, lua_upvalueindex(1));
  return lua_error(L);
}

static const char exit_wrappers[] =
    "local sentinel = ...\n"
    "local raw_pcall, raw_xpcall, error = pcall, xpcall, error\n"
    "local function pass(ok, ...)\n"
    "  if not ok and (...) == sentinel then error(sentinel, 0) end\n"
    "  return ok, ...\n"
    "end\n"
    "pcall = function(...) return pass(raw_pcall(...)) end\n"
    "xpcall = function(f, handler, ...)\n"
    "  return pass(raw_xpcall(f, function(e) if e == sentinel then return e end return handler(e) end, ...))\n"
    "end\n";

/* Makes os.exit end the run instead of the process. */
static int install_run_exit(lua_State *L) {
  lua_newtable(L); /* the sentinel */
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "os.exit");
  lua_setfield(L, -2, "__name");
  lua_setmetatable(L, -2);
  lua_getglobal(L, "os");
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, run_exit, 1);
  lua_setfield(L, -2, "exit");
  lua_pop(L, 1);
  if (luaL_loadbuffer(L, exit_wrappers, sizeof exit_wrappers - 1, "=(scheduled exit)") != LUA_OK) return lua_error(L);
  lua_insert(L, -2);
  lua_call(L, 1, 0);
  return 0;
}

/* One run in a fresh Lua state: -e/-l chunks, the script, then the REPL or stdin as asked. */
static int run_once(int argc, char **argv, const struct options *o) {
  lua_State *L = sg_state_new();
  if (!L) {
    report_error("cannot create the Lua state: out of memory");
    return 1;
  }
  sg_loop *loop = sg_loop_default();
  if (sg_sched_init(L, loop) != LUA_OK) {
    report_error(lua_tostring(L, -1));
    sg_sched_shutdown(L);
    lua_close(L);
    return 1;
  }
  register_options(L, o);
  int code = 0;
  exit_requested = 0;
  chunk_mode = o->dry_run ? "t" : NULL;
  if (o->dry_run) {
    lua_pushcfunction(L, enable_dry_run);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) code = report_load_error(L);
  }
  int repl = o->interactive || (!o->script && !o->has_exec && isatty(STDIN_FILENO));
  on_schedule = o->every > 0 || o->cron;
  if (!code && !repl) {
    lua_pushcfunction(L, install_run_exit);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) code = report_load_error(L);
  }
  create_arg_table(L, argc, argv, o->script);

  if (!code) code = run_exec_args(L, argv, o->script ? o->script : argc);
  if (!code && !exit_requested && o->script) code = run_script(L, argc, argv, o->script);
  if (!code && repl) {
    code = sg_repl_run(L);
  } else if (!code && !exit_requested && !o->script && !o->has_exec) {
    if (luaL_loadfilex(L, NULL, chunk_mode) != LUA_OK) code = report_load_error(L);
    else code = run_task(L, 0);
  }
  sg_sched_shutdown(L);
  lua_close(L);
  return code;
}

static int locks_playbook(int argc, char **argv, const struct options *o) {
  (void)argc;
  return o->script && strcmp(argv[o->script], "-") != 0 && !o->no_lock;
}

/* A run under the playbook's lock; EXIT_LOCKED when another process holds it. */
static int run_locked(int argc, char **argv, const struct options *o) {
  if (!locks_playbook(argc, argv, o)) return run_once(argc, argv, o);
  char holder[600], variant[300];
  long stale = 0;
  /* another account (--profile), the emulator, or a dry run is another job: a dry-run preview
   * holding the lock made the real scheduled run skip (75) */
  snprintf(variant, sizeof variant, "%s%s%s%s", o->dry_run ? "dry-run " : "", o->sim ? "sim " : "",
           o->profile ? "profile=" : "", o->profile ? o->profile : "");
  int fd = sg_lock_playbook(argv[o->script], argv + o->script + 1, argc - o->script - 1, o->lock_name,
                            *variant ? variant : NULL, holder, sizeof holder, &stale);
  if (fd == -2) {
    report_error(holder);
    return 1;
  }
  if (fd == -1) {
    sg_log("warn", "run_skipped", "another sgrun process is running this playbook", "holder", holder, NULL);
    return EXIT_LOCKED;
  }
  if (stale) {
    char pid[32];
    snprintf(pid, sizeof pid, "%ld", stale);
    sg_log("warn", "lock_taken_over", "the previous holder of the lock ended without releasing it", "pid", pid, NULL);
  }
  int code = run_once(argc, argv, o);
  sg_unlock_playbook(fd);
  return code;
}

/* A schedule's clock: --cron keeps the wall clock's time of day; --every counts elapsed
 * seconds, so that setting the clock back an hour does not hold the next run for an hour, nor
 * setting it forward make a run look an hour late. CLOCK_BOOTTIME, not MONOTONIC: it goes on
 * while the machine sleeps, so an --every 1h laptop runs on waking after a night. */
static double schedule_now(const struct options *o) {
  if (o->cron) return (double)time(NULL);
  struct timespec ts;
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waits until the schedule's clock reads `when`; returns the signal that cut the wait short, or 0. */
static int wait_until(const struct options *o, double when) {
  sg_loop *loop = sg_loop_default();
  for (;;) {
    int sig = sg_loop_peek_signal();
    if (sig) return sig;
    double left = when - schedule_now(o);
    if (left <= 0) return 0;
    sg_loop_run_once(loop, left);
  }
}

static double next_due(const struct options *o, double previous) {
  if (previous < 0) return -1;
  return o->cron ? (double)sg_cron_next(&o->cron_spec, (time_t)previous) : previous + o->every;
}

/* --every / --cron: fresh run after fresh run until SIGINT or SIGTERM. */
static int run_schedule(int argc, char **argv, const struct options *o) {
  sg_loop_catch_signals(sg_loop_default(), NULL);
  sg_sched_set_graceful_term(1);
  char every[32];
  snprintf(every, sizeof every, "%gs", o->every);
  sg_log("info", "schedule_started", NULL, o->cron ? "cron" : "every", o->cron ? o->cron : every, NULL);
  double due = o->cron ? (double)sg_cron_next(&o->cron_spec, time(NULL)) : schedule_now(o);
  int interrupted = 0; /* the exit code of a run the signal interrupted: the schedule's too */
  for (unsigned long run = 1;; run++) {
    /* counted before the wait: a signal that lands between the wait and the run, and that the
     * run takes, still stops the schedule */
    long signals_before = sg_loop_signals_seen(NULL);
    int sig = wait_until(o, due);
    if (sig) break;
    char run_id[48], took[32], exit_code[16];
    snprintf(run_id, sizeof run_id, "%ld-%lu", (long)getpid(), run);
    sg_log_set_run(run_id);
    sg_log("info", "run_started", NULL, NULL);
    double started = sg_now();
    exit_requested = 0;
    int code = run_locked(argc, argv, o);
    snprintf(took, sizeof took, "%.3f", sg_now() - started);
    snprintf(exit_code, sizeof exit_code, "%d", code);
    /* a playbook's own non-zero status (drift found: 3) is its answer, not a failure of the run */
    const char *status = code == 0 ? "ok" : code == EXIT_LOCKED ? "skipped" : exit_requested ? "exit" : "error";
    const char *level = code == 0 || exit_requested ? "info" : code == EXIT_LOCKED ? "warn" : "error";
    sg_log(level, "run_finished", NULL, "status", status, "exit_code", exit_code, "seconds", took, NULL);
    sg_log_set_run(NULL);
    /* a playbook that handled SIGINT itself (a roll-out restoring its targets) took the signal
     * and ended with its code: the schedule stops all the same. One that exited 130 with no
     * signal sent chose that status, and the schedule goes on. */
    if (sg_loop_signals_seen(NULL) != signals_before) {
      if (code == 128 + SIGINT || code == 128 + SIGTERM) interrupted = code;
      break;
    }
    double now = schedule_now(o), first_skipped = 0;
    unsigned long skipped = 0;
    for (due = next_due(o, due); due >= 0 && due <= now; due = next_due(o, due))
      if (skipped++ == 0) first_skipped = due;
    if (skipped) {
      char when[32], count[24];
      struct tm tm;
      time_t first_at = time(NULL) - (time_t)(now - first_skipped); /* on the wall clock */
      localtime_r(&first_at, &tm);
      strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
      snprintf(count, sizeof count, "%lu", skipped);
      sg_log("warn", "run_skipped", "the previous run was still going when these were due", "due", when, "runs",
             count, NULL);
    }
    if (due < 0) {
      report_error("the cron expression matches no time in the next five years");
      return 1;
    }
  }
  int sig;
  sg_loop_signals_seen(&sig);
  sg_loop_take_signal();
  sg_log("info", "schedule_stopped", sig == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
  /* SIGTERM (a service manager's stop) between runs, or after the run it let finish, is a clean
   * stop; a run the signal cut short is not, and cron or a service manager must see that.
   * SIGINT is a person's Ctrl-C: 130 whenever it came. */
  return sig == SIGINT ? 128 + SIGINT : interrupted;
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
  const char *debug_env = getenv("SGRUN_DEBUG");
  debug_errors = o.debug || (debug_env && *debug_env && strcmp(debug_env, "0") != 0);
  const char *playbook = o.script ? argv[o.script] : "";
  sg_log_configure(o.log_format && strcmp(o.log_format, "json") == 0 ? SG_LOG_JSON : SG_LOG_TEXT,
                   strcmp(playbook, "-") == 0 ? "(stdin)" : playbook);

  struct sg_sim *sim = NULL;
  void (*sim_stop)(struct sg_sim *) = NULL;
  if (o.sim) {
    char err[256];
    struct sg_sim_options so = {.task_delay_ms = 300, .quiet = 1, .state_file = o.state_file,
                                .seed = o.seed, .has_seed = o.has_seed, .tls = o.sim_tls};
    struct sg_sim *(*sim_start)(const struct sg_sim_options *, char *, size_t) =
        (struct sg_sim * (*)(const struct sg_sim_options *, char *, size_t)) ext_or_exit("sg_sim_start");
    void (*sim_export_env)(struct sg_sim *) = (void (*)(struct sg_sim *))ext_or_exit("sg_sim_export_env");
    sim_stop = (void (*)(struct sg_sim *))ext_or_exit("sg_sim_stop");
    sim = sim_start(&so, err, sizeof err);
    if (!sim) {
      fprintf(stderr, "%s: could not start the emulator: %s\n", progname, err);
      return strncmp(err, "invalid --", 10) == 0 ? 2 : 1; /* the user's option, not the machine */
    }
    sim_export_env(sim);
  }

  if (o.every > 0 || o.cron) code = run_schedule(argc, argv, &o);
  else code = run_locked(argc, argv, &o);

  sg_loop_free(sg_loop_default());
  if (sim && o.state_file) {
    char err[512];
    int (*sim_save)(struct sg_sim *, const char *, char *, size_t) =
        (int (*)(struct sg_sim *, const char *, char *, size_t))ext_or_exit("sg_sim_save_state");
    if (sim_save(sim, o.state_file, err, sizeof err) != 0) {
      fprintf(stderr, "%s: could not save the emulator's state: %s\n", progname, err);
      if (code == 0) code = 1;
    }
  }
  if (sim) sim_stop(sim);
  return code;
}
