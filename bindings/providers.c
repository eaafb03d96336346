/* _sg.providers: the names of the providers this build knows, in the order the build found their
 * bindings ({"barrack", "exoscale", ...}); each has a binding "_sg.NAME", a codec
 * "sg.codec.NAME" and an emulator module "sgsim.NAME". */
#include <lauxlib.h>
#include <lua.h>

#include "state.h"

int luaopen__sg_providers(lua_State *L) {
  lua_newtable(L);
  for (int i = 0; sg_provider_modules[i]; i++) {
    lua_pushstring(L, sg_provider_modules[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}
