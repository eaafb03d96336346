/* libFuzzer target over a Lua parser: FUZZ_SCRIPT returns function(data) that feeds the input to
 * the code under test and raises an error starting with "BUG" when it misbehaves (a raise where
 * it should return an error, an error that does not say what is wrong, a broken round trip).
 * Clean rejections of bad input are the expected outcome and are not findings. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"

static lua_State *L;
static int target;

/* The Lua code under test is not compiled with coverage instrumentation, so a line hook feeds
 * libFuzzer's extra counters with (previous line, line) edges: inputs that reach new Lua code
 * are kept and mutated further. */
__attribute__((section("__libfuzzer_extra_counters"))) static uint8_t lua_edges[1 << 16];
static uintptr_t previous_line;

static void count_line(lua_State *l, lua_Debug *ar) {
  lua_getinfo(l, "S", ar);
  uintptr_t here = (uintptr_t)ar->source * 33 + (uintptr_t)ar->currentline;
  lua_edges[(here ^ previous_line) & (sizeof lua_edges - 1)]++;
  previous_line = here >> 1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  L = sg_state_new();
  if (!L || luaL_loadfile(L, FUZZ_SCRIPT) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
    fprintf(stderr, "fuzz: cannot load %s: %s\n", FUZZ_SCRIPT, L ? lua_tostring(L, -1) : "no memory");
    abort();
  }
  target = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_sethook(L, count_line, LUA_MASKLINE, 0);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, target);
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    if (!msg || strncmp(msg, "BUG", 3) == 0) {
      fprintf(stderr, "%s\n", msg ? msg : "(an error that is not a string)");
      abort();
    }
    lua_pop(L, 1);
  }
  return 0;
}
