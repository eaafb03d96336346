#ifndef SG_LOOP_H
#define SG_LOOP_H
/* The event loop: epoll for file descriptors, a min-heap of one-shot timers, and a self-pipe that
 * turns signals into loop events. It knows nothing of Lua or curl. */

enum { SG_READ = 1, SG_WRITE = 2 };

typedef struct sg_loop sg_loop;
typedef struct sg_timer sg_timer;
typedef void (*sg_fd_fn)(void *ud, int fd, int events);
typedef void (*sg_timer_fn)(void *ud);

sg_loop *sg_loop_new(void);
void sg_loop_free(sg_loop *loop);

/* The process-wide loop the runtime uses (created on first use). */
sg_loop *sg_loop_default(void);

/* Seconds on the monotonic clock. */
double sg_now(void);

/* Watch fd for events (SG_READ|SG_WRITE); events == 0 stops watching. Returns 0 or -errno. */
int sg_loop_watch(sg_loop *loop, int fd, int events, sg_fd_fn fn, void *ud);

/* Stops dispatching fd's events but keeps it registered with the kernel, so that watching it
 * again costs one epoll_ctl (MOD) instead of two (DEL, then ADD): a kept-alive connection goes
 * idle and back to work once per request. A parked fd does not count as pending; an event on it
 * unregisters it. The owner should call sg_loop_watch(loop, fd, 0, ...) before closing it; if it
 * could not (the fd was closed behind its back), watching the number again still registers the
 * new file. */
void sg_loop_park(sg_loop *loop, int fd);

/* A one-shot timer after delay seconds (0 runs on the next iteration). Returned handle is valid
 * until it fires or is stopped. */
sg_timer *sg_timer_start(sg_loop *loop, double delay, sg_timer_fn fn, void *ud);
void sg_timer_stop(sg_loop *loop, sg_timer *t);

/* Number of timers and watched fds: zero means nothing can ever wake the loop. */
int sg_loop_pending(const sg_loop *loop);

/* Waits at most max_wait seconds (negative: until something happens) and dispatches what is due.
 * Returns the number of callbacks run. */
int sg_loop_run_once(sg_loop *loop, double max_wait);

/* The epoll timeout for a wait of `seconds` (negative: none, -1): rounded up to whole
 * milliseconds, so a wait never ends early, and at most SG_LOOP_LONGEST_WAIT, since a month in
 * milliseconds does not fit an int (it wrapped to "wait for ever"); a longer wait wakes once in
 * a while and its caller waits again. */
#define SG_LOOP_LONGEST_WAIT 3600.0
int sg_loop_wait_ms(double seconds);

/* SIGINT/SIGTERM handling (SIGHUP is taken as SIGTERM, unless it is ignored, as under nohup): the
 * handler only records the signal and writes the self-pipe, so a
 * blocked loop wakes up; in_handler (may be NULL) also runs inside the handler, so it must be
 * async-signal-safe. sg_loop_take_signal returns and clears the last one (0 if none). */
void sg_loop_catch_signals(sg_loop *loop, void (*in_handler)(int sig));
int sg_loop_take_signal(void);
/* Gives SIGHUP back its default action (unless it was ignored): for the REPL, whose terminal is
 * its whole session, a hangup ends it at once. */
void sg_loop_default_hangup(void);
int sg_loop_peek_signal(void);
/* How many SIGINT/SIGTERMs have come so far, taken or not, and the latest (0 if none): tells a
 * run a signal cut short from one that exited 130 of its own accord. */
long sg_loop_signals_seen(int *latest);

#endif
