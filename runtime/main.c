#include "state.h"
#include <stdio.h>
int main(int argc, char **argv) {
  lua_State *L = sg_state_new();
  if (argc > 1 && luaL_dofile(L, argv[1]) != LUA_OK) { fprintf(stderr, "%s\n", lua_tostring(L, -1)); return 1; }
  lua_close(L);
  return 0;
}
