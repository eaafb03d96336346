#ifndef SG_REGULARFILE_H
#define SG_REGULARFILE_H
/* Reading the files a user names (snapshots, plans, reports, the emulator's --state): whole, and
 * only if they are regular files. A FIFO, device or directory there is refused at once; opening
 * a FIFO for reading would otherwise wait for a writer for ever. */
#include <lua.h>
#include <sys/stat.h>

#define SG_NOT_REGULAR (-2)

/* Opens path read-only and fstats the descriptor, so that what is checked is what is read.
 * Returns the descriptor, -1 with errno set, or SG_NOT_REGULAR (closed; st says what it is). */
int sg_open_regular(const char *path, struct stat *st);

/* "a directory", "a FIFO" or "a device or socket": what a non-regular file is, for messages. */
const char *sg_file_kind(mode_t mode);

/* Pushes fd's content, read to its end, as one string. 0, or an errno with nothing pushed. fd
 * stays open: it raises when out of memory, so a caller that can catch that error holds fd in
 * something Lua closes on the way out (bindings/fs.c: a to-be-closed slot), or it leaks. */
int sg_push_file(lua_State *L, int fd);

#endif
