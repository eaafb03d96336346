#include "lock.h"
#include "privatedir.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The lock directory must be one only this user can write: anyone else able to create names in
 * it could plant a symlink (a root run would then truncate any file) or hold the lock forever. */
static int open_lock_dir(const char *dir, int create, char *err, size_t errlen) {
  char why[160];
  int dfd = sg_open_private_dir(dir, create, why, sizeof why);
  if (dfd < 0)
    snprintf(err, errlen, "cannot use the lock directory %s: %s. Use a directory only you can write "
             "(chmod 700 it, or set SGRUN_LOCK_DIR)", dir, why);
  return dfd;
}

/* SGRUN_LOCK_DIR, else /run/sgrun for root, else /tmp/sgrun-UID (created 0700). Returns a
 * descriptor of the checked directory and its path in `dir`. The default depends on the user
 * alone, never on the session's environment: XDG_RUNTIME_DIR is set in a login session and not
 * under cron, and two directories would let the same job run twice at once and hide one run's
 * roll-out journal from the other's --recover. */
static int lock_dir(char *dir, size_t dirlen, char *err, size_t errlen) {
  const char *d = getenv("SGRUN_LOCK_DIR");
  int create = 0;
  if (!d || !*d) {
    create = 1;
    if (geteuid() == 0) {
      d = "/run/sgrun";
    } else {
      snprintf(dir, dirlen, "/tmp/sgrun-%ld", (long)geteuid());
      d = dir;
    }
  }
  if (d != dir) snprintf(dir, dirlen, "%s", d);
  return open_lock_dir(dir, create, err, errlen);
}

int sg_lock_dir(char *dir, size_t dirlen, char *err, size_t errlen) {
  int fd = lock_dir(dir, dirlen, err, errlen);
  if (fd < 0) return -1;
  close(fd);
  return 0;
}

/* An argument as the lock key takes it: a file name by the real path of its directory and its
 * own name, so that one name in two directories is two jobs and two names of one file are one,
 * whether the file exists yet or not (an output file a run creates must not change the key
 * between runs); anything else as typed. "word:..." is a target (PROVIDER:GROUP), never a file. */
static const char *arg_key(const char *arg, char *real, size_t reallen) {
  size_t word = strspn(arg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
  if (word > 0 && arg[word] == ':') return arg;
  const char *slash = strrchr(arg, '/');
  const char *base = slash ? slash + 1 : arg;
  if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) return realpath(arg, real) ? real : arg;
  char dir[PATH_MAX], dir_real[PATH_MAX];
  if (!slash) snprintf(dir, sizeof dir, ".");
  else if (slash == arg) snprintf(dir, sizeof dir, "/");
  else snprintf(dir, sizeof dir, "%.*s", (int)(slash - arg), arg);
  if (!realpath(dir, dir_real)) return arg; /* no such directory: not a file name */
  if ((size_t)snprintf(real, reallen, "%s/%s", strcmp(dir_real, "/") == 0 ? "" : dir_real, base) >= reallen)
    return arg;
  return real;
}

/* The lock file's name: the label (the lock name, else the playbook's file name) made safe, and
 * a hash of the whole key (the lock name, else the playbook's real path and its arguments), so
 * every way of naming the file shares one lock and two jobs on different arguments do not. */
static void lock_name(const char *playbook, char *const *args, int nargs, const char *name, const char *variant,
                      char *out, size_t outlen) {
  unsigned long long h = 1469598103934665603ULL; /* FNV-1a */
#define HASH(str) \
  for (const unsigned char *p = (const unsigned char *)(str);; p++) { \
    h = (h ^ *p) * 1099511628211ULL; \
    if (!*p) break; \
  }
  char real[PATH_MAX];
  const char *label;
  if (name) {
    HASH("name");
    HASH(name);
    label = name;
  } else {
    if (!realpath(playbook, real)) snprintf(real, sizeof real, "%s", playbook);
    HASH(real);
    for (int i = 0; i < nargs; i++) {
      char arg_real[2 * PATH_MAX];
      HASH(arg_key(args[i], arg_real, sizeof arg_real));
    }
    label = strrchr(real, '/') ? strrchr(real, '/') + 1 : real;
  }
  /* with a lock name too: a dry-run preview must not hold up the real run */
  if (variant) {
    HASH("variant");
    HASH(variant);
  }
#undef HASH
  char safe[65];
  size_t n = 0;
  for (const char *c = label; *c && n < sizeof safe - 1; c++)
    safe[n++] = (isalnum((unsigned char)*c) || *c == '.' || *c == '-' || *c == '_') ? *c : '_';
  safe[n] = 0;
  snprintf(out, outlen, "sgrun-%s-%016llx.lock", safe, h);
}

static void describe_owner(uid_t uid, char *out, size_t outlen) {
  struct passwd *pw = getpwuid(uid);
  if (pw) snprintf(out, outlen, "user %s (uid %ld)", pw->pw_name, (long)uid);
  else snprintf(out, outlen, "uid %ld", (long)uid);
}

/* The lock this process holds: released (emptied) on every way out, os.exit included. */
static int held_fd = -1;

static void release_at_exit(void) {
  if (held_fd >= 0 && ftruncate(held_fd, 0) != 0) {
    /* the kernel drops the flock anyway; the next owner just sees a stale pid */
  }
}

int sg_lock_file(const char *file, char *holder, size_t holderlen, long *stale_pid) {
  char dir[PATH_MAX], path[PATH_MAX + 160];
  *stale_pid = 0;
  if (!*file || strchr(file, '/')) {
    snprintf(holder, holderlen, "'%s' is not a lock file name (a name without '/')", file);
    return -2;
  }
  int dfd = lock_dir(dir, sizeof dir, holder, holderlen);
  if (dfd < 0) return -2;
  snprintf(path, sizeof path, "%s/%s", dir, file);
  int fd = openat(dfd, file, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  int open_errno = errno;
  close(dfd);
  if (fd < 0) {
    snprintf(holder, holderlen, "cannot open the lock file %s: %s (set SGRUN_LOCK_DIR to a "
             "directory only you can write)", path,
             open_errno == ELOOP ? "it is a symbolic link, which sgrun never follows" : strerror(open_errno));
    return -2;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    snprintf(holder, holderlen, "refusing the lock file %s: it is not a regular file; remove it", path);
    close(fd);
    return -2;
  }
  int locked = flock(fd, LOCK_EX | LOCK_NB) == 0;
  /* the content is read once the flock is settled: read before it, the pid of a holder that
   * released the lock cleanly in between was taken for a crashed run's, and a holder that took
   * it in between went unnamed */
  char previous[128] = "";
  ssize_t n = pread(fd, previous, sizeof previous - 1, 0);
  if (n > 0) previous[n] = 0;
  if (st.st_uid != geteuid()) {
    char owner[128];
    describe_owner(st.st_uid, owner, sizeof owner);
    if (!locked)
      snprintf(holder, holderlen, "the lock %s is held by another user, %s; that user's sgrun (or "
               "whatever holds it) must end first", path, owner);
    else
      snprintf(holder, holderlen, "refusing the lock file %s: it belongs to %s, not to you; remove "
               "it (or set SGRUN_LOCK_DIR to a directory only you can write)", path, owner);
    close(fd);
    return -2;
  }
  if (!locked) {
    long pid = 0;
    long long since = 0;
    sscanf(previous, "%ld %lld", &pid, &since);
    time_t t = (time_t)since;
    struct tm tm;
    char when[32] = "?";
    if (localtime_r(&t, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(holder, holderlen, "pid %ld since %s (lock %s)", pid, when, path);
    close(fd);
    return -1;
  }
  long pid = 0;
  if (sscanf(previous, "%ld", &pid) == 1 && pid != (long)getpid()) *stale_pid = pid;
  char mine[64];
  int len = snprintf(mine, sizeof mine, "%ld %lld\n", (long)getpid(), (long long)time(NULL));
  if (ftruncate(fd, 0) != 0 || pwrite(fd, mine, (size_t)len, 0) != len) {
    snprintf(holder, holderlen,
             "cannot write the lock file %s: %s (free space there, or set SGRUN_LOCK_DIR to another directory)",
             path, strerror(errno));
    close(fd);
    return -2;
  }
  return fd;
}

void sg_unlock_file(int fd) {
  if (fd < 0) return;
  if (ftruncate(fd, 0) != 0) {
    /* the lock is released with the descriptor either way; the next owner just sees a stale pid */
  }
  close(fd);
}

int sg_lock_playbook(const char *playbook, char *const *args, int nargs, const char *name, const char *variant,
                     char *holder, size_t holderlen, long *stale_pid) {
  char file[128];
  lock_name(playbook, args, nargs, name, variant, file, sizeof file);
  int fd = sg_lock_file(file, holder, holderlen, stale_pid);
  if (fd < 0) return fd;
  static int registered;
  if (!registered) registered = atexit(release_at_exit) == 0;
  held_fd = fd;
  return fd;
}

void sg_unlock_playbook(int fd) {
  if (fd == held_fd) held_fd = -1;
  sg_unlock_file(fd);
}
