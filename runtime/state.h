#ifndef SG_STATE_H
#define SG_STATE_H
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

/* A C module preloaded into every state as "_sg.NAME" (list generated from bindings/): either
 * linked in (open) or opened from libsgrun_net.so on first require (ext_symbol). */
struct sg_binding {
  const char *module;
  lua_CFunction open;
  const char *ext_symbol;
};
extern const struct sg_binding sg_bindings[];

/* The bindings that describe a cloud provider ("exoscale", ...; NULL-terminated): their
 * "_sg.NAME" module returns a provider description (bindings/provider.h). */
extern const char *const sg_provider_modules[];

/* A fresh Lua state: standard libraries, "cjson", every "_sg.*" binding preloaded, and a searcher
 * that finds the embedded stdlib/ and sim/ modules (or, when SGRUN_DEV_ROOT names a source tree,
 * the files there first, so Lua edits need no rebuild). Returns NULL when out of memory. */
lua_State *sg_state_new(void);

/* lua_CFunction, for --dry-run: package.loadlib, os.execute and io.popen raise, require no
 * longer finds C modules, and load, loadfile, dofile and require take text chunks only (crafted
 * bytecode can run native code). A second copy of sgrun's network library, or any other C code
 * or program, would not share the HTTP binding's dry-run switch. The preloaded bindings stay.
 * The script itself is loaded as text by the caller. */
int sg_state_forbid_native(lua_State *L);

/* Message handler for lua_pcall: turns the error at the top into "message\ntraceback". */
int sg_msghandler(lua_State *L);

/* The printable form of the value at idx: strings as-is, __tostring when present, else a
 * description of its type. Pushes the result and returns it. */
const char *sg_tostring_error(lua_State *L, int idx);

#endif
