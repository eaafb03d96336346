/* _sg.fs under memory pressure: every read and listing, failing at each allocation in turn,
 * leaves no descriptor open (a file read into a string, or a directory listed into a table,
 * must be closed when Lua raises "not enough memory" half way), and still gives the whole
 * result once there is memory enough. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "state.h"

static lua_Alloc real_alloc;
static void *real_ud;
static long allocations_left;

/* Fails every allocation or growth once the budget is spent; frees and shrinks always succeed,
 * as Lua expects of them. */
static void *failing_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  int grows = nsize > 0 && (ptr == NULL || nsize > osize);
  if (grows && allocations_left-- <= 0) return NULL;
  return real_alloc(real_ud, ptr, osize, nsize);
}

/* The lowest free descriptor number: a descriptor left open anywhere below it changes it. */
static int lowest_free_fd(void) {
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  CHECK(fd >= 0);
  close(fd);
  return fd;
}

/* Calls fs[fn](arg) with `budget` allocations allowed, for each budget from 0 up until the call
 * succeeds; checks that no call leaves a descriptor open. Leaves the successful result on the
 * stack and returns how many calls failed for want of memory. */
static int call_at_every_budget(lua_State *L, const char *fn, const char *arg) {
  /* once with memory enough first: Lua 5.4's luaL_Buffer makes its box's metatable on first use,
   * and a failure half way through that leaves it without __close for the state's life */
  lua_getfield(L, 1, fn);
  lua_pushstring(L, arg);
  CHECK(lua_pcall(L, 1, 1, 0) == LUA_OK);
  lua_pop(L, 1);
  int failures = 0;
  for (long budget = 0;; budget++) {
    int fds_before = lowest_free_fd();
    lua_getfield(L, 1, fn);
    lua_pushstring(L, arg);
    lua_setallocf(L, failing_alloc, NULL);
    allocations_left = budget;
    int status = lua_pcall(L, 1, 1, 0);
    lua_setallocf(L, real_alloc, real_ud);
    /* what is left open until the next collection is not leaked: a long run collects */
    lua_gc(L, LUA_GCCOLLECT);
    int fds_after = lowest_free_fd();
    if (fds_after != fds_before) fprintf(stderr, "%s with %ld allocations: a descriptor was left open\n", fn, budget);
    CHECK(fds_after == fds_before);
    if (status == LUA_OK) return failures;
    CHECK(status == LUA_ERRMEM);
    if (status != LUA_ERRMEM) {
      fprintf(stderr, "%s with %ld allocations: %s\n", fn, budget, lua_tostring(L, -1));
      return failures;
    }
    lua_pop(L, 1);
    failures++;
  }
}

int main(void) {
  lua_State *L = sg_state_new();
  CHECK(L != NULL);
  if (!L) return check_report();
  real_alloc = lua_getallocf(L, &real_ud);
  CHECK(luaL_dostring(L, "return require '_sg.fs'") == LUA_OK);

  char dir[] = "/tmp/sgrun-fs-memory-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  /* larger than Lua's buffer many times over, so the read grows it while the file is open */
  static char content[256 * 1024];
  for (size_t i = 0; i < sizeof content; i++) content[i] = (char)('a' + i % 26);
  char file[sizeof dir + 16];
  snprintf(file, sizeof file, "%s/content", dir);
  int fd = open(file, O_WRONLY | O_CREAT | O_EXCL, 0600);
  CHECK(fd >= 0 && write(fd, content, sizeof content) == (ssize_t)sizeof content);
  close(fd);
  /* enough names that the table grows while the directory is open */
  enum { extra_names = 300 };
  for (int i = 0; i < extra_names; i++) {
    char name[sizeof dir + 32];
    snprintf(name, sizeof name, "%s/name-%03d", dir, i);
    fd = open(name, O_WRONLY | O_CREAT | O_EXCL, 0600);
    CHECK(fd >= 0);
    close(fd);
  }

  static const char *const readers[] = {"read_regular", "read_private"};
  for (size_t r = 0; r < sizeof readers / sizeof *readers; r++) {
    CHECK(call_at_every_budget(L, readers[r], file) > 0);
    size_t len = 0;
    const char *got = lua_tolstring(L, -1, &len);
    CHECK(got && len == sizeof content && memcmp(got, content, len) == 0);
    lua_pop(L, 1);
  }

  CHECK(call_at_every_budget(L, "list", dir) > 0);
  CHECK(lua_istable(L, -1) && luaL_len(L, -1) == extra_names + 1);
  lua_pop(L, 1);

  lua_close(L);
  char cmd[sizeof dir + 16];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  CHECK(system(cmd) == 0);
  return check_report();
}
