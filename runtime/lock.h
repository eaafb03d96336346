#ifndef SG_LOCK_H
#define SG_LOCK_H
/* The lock that keeps two sgrun processes from running the same playbook at once, and the
 * private directory it lives in. */
#include <stddef.h>

/* Takes the lock of a job: an exclusive flock on a file that records the owner's pid and start
 * time. The job is `name` when given (--lock-name), else the playbook's real path with its
 * arguments; either way with `variant` (NULL, or what else of sgrun's options makes it another
 * job: a dry run, the emulator, a profile). The file lives in a directory only this user can
 * write (see lock_dir in lock.c), is opened without following symlinks and must belong to this
 * user. Returns the fd (keep it open while running), -1 when another live process of this user
 * holds it (holder describes it), or -2 on an error, a foreign lock file included (holder says
 * what). A lock left by a dead process is free again (the kernel drops flocks with their
 * process); stale_pid then names it. The lock is emptied at exit too, os.exit included. */
int sg_lock_playbook(const char *playbook, char *const *args, int nargs, const char *name, const char *variant,
                     char *holder, size_t holderlen, long *stale_pid);

/* Takes the lock named `file` (a plain name) in the lock directory, with the same checks, the
 * same pid and start time recorded, and the same results (fd, -1 held by a live process of this
 * user with holder "pid N since TIME (lock PATH)", -2 an error), for locks other than the
 * playbook's (a roll-out's targets). Kept until sg_unlock_file or the process ends. */
int sg_lock_file(const char *file, char *holder, size_t holderlen, long *stale_pid);
/* Releases a lock taken by sg_lock_file, leaving the file empty. */
void sg_unlock_file(int fd);

/* Releases a lock taken by sg_lock_playbook, leaving the file empty so the next owner can tell a
 * clean release from a crash. */
void sg_unlock_playbook(int fd);
/* The checked directory of the locks (created 0700 where sgrun picks it), for files that live
 * beside them (roll-out journals). 0, or -1 with the reason in err. */
int sg_lock_dir(char *dir, size_t dirlen, char *err, size_t errlen);

#endif
