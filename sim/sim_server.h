#ifndef SG_SIM_SERVER_H
#define SG_SIM_SERVER_H
#include <stddef.h>

/* The provider emulator (`sgrun sim`, `sgrun --sim`): one HTTP server (libmicrohttpd, a thread
 * per connection) in front of one Lua state running sim/sgsim (the routing, knobs, faults, log
 * and the five provider modules). The Lua state is guarded by a mutex; latency is slept outside
 * it, so slow requests are served concurrently. */

struct sg_sim;

struct sg_sim_options {
  const char *host;      /* address to listen on; NULL means 127.0.0.1 */
  int port;              /* 0 picks a free port */
  double latency_ms;     /* fixed delay added to every provider response */
  double jitter_ms;      /* plus a uniform random delay in [0, jitter_ms) */
  double task_delay_ms;  /* how long async work (operations, tasks) takes; < 0 means the default */
  const char *faults;    /* fault spec, see `sgrun sim --help`; NULL for none */
  long long seed;        /* PRNG seed, used when has_seed */
  int has_seed;
  const char *state_file; /* load from it at start when it exists (sg_sim_save_state writes it) */
  int quiet;             /* no request log lines on stderr */
  int accounts;          /* fleet accounts per provider (0: the knob's default) */
  int account_groups;    /* groups per fleet account (0: the knob's default) */
  int tls;               /* serve HTTPS with a certificate from the emulator's own CA */
  const char *tls_dir;   /* with tls: where that CA lives (made when absent); NULL: a temporary one */
};

/* Starts the server; NULL on failure with a message in err. */
struct sg_sim *sg_sim_start(const struct sg_sim_options *opts, char *err, size_t errlen);

/* "http://127.0.0.1:PORT" (https:// with tls) (no trailing slash). */
const char *sg_sim_base_url(const struct sg_sim *sim);

/* With tls, the CA certificate clients must trust (also SGRUN_CA_FILE in the env); else NULL. */
const char *sg_sim_ca_file(const struct sg_sim *sim);

/* setenv() SGRUN_SIM_URL, every SGRUN_<PROVIDER>_URL and every provider's demo credentials. */
void sg_sim_export_env(struct sg_sim *sim);

/* Writes the same variables as KEY=VALUE lines to path; 0 on success. */
int sg_sim_write_env_file(struct sg_sim *sim, const char *path);

/* The banner printed by `sgrun sim`: base URL, prefixes, demo credentials (malloc'd string). */
char *sg_sim_banner(struct sg_sim *sim);

/* Writes an inventory of the fleet accounts to path and their profile file beside it (path with
 * ".lua" replaced by ".profiles", mode 0600); both are created exclusively. 0 on success. */
int sg_sim_write_fleet_file(struct sg_sim *sim, const char *path, char *err, size_t errlen);

/* Dumps the emulator state as JSON into path (atomically); 0 on success. */
int sg_sim_save_state(struct sg_sim *sim, const char *path, char *err, size_t errlen);

/* Stops the server and frees everything. NULL is allowed. */
void sg_sim_stop(struct sg_sim *sim);

/* The `sgrun sim ...` subcommand; argv[0] is "sim". Returns the process exit status. */
int sg_sim_main(int argc, char **argv);

#endif
