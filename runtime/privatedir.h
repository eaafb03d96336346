#ifndef SG_PRIVATEDIR_H
#define SG_PRIVATEDIR_H
/* Directories only this user can write (the lock directory, the emulator's TLS directory):
 * anyone else able to create names in one could plant a symlink there, or a file sgrun would
 * then trust. */
#include <stddef.h>

/* Opens dir without following a symlink and checks on the descriptor that it is this user's
 * and that group and others cannot write it; with create, makes it (0700) first when absent.
 * Returns the descriptor, or -1 with what is wrong in why: "it is a symbolic link", "it is not
 * yours (owner uid N, mode 0MMM)", "it is writable by others (...)", or the system's reason. */
int sg_open_private_dir(const char *dir, int create, char *why, size_t whylen);

/* The directory part of path into out ("." when it has none, "/" for a file at the root). */
void sg_parent_dir(const char *path, char *out, size_t outlen);

#endif
