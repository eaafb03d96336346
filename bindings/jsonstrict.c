/* _sg.jsonstrict: JSON decoding that keeps what lua-cjson loses (libjansson underneath).
 *
 *   decode(text [, array_mt [, object_mt]]) -> value | nil, message
 *
 * Every decoded array gets array_mt and every object object_mt (when given), so `[]` and `{}`
 * stay different; null is the same light userdata as cjson.null, distinct from an absent key;
 * a number written as an integer is a Lua integer and one with a fraction or exponent a float,
 * so `8080` and `8080.0` stay different; an object with a key twice is refused. The emulator decodes request bodies with it, so it can
 * refuse what the vendors' schemas refuse. */
#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>

#define MT_ARRAY 2
#define MT_OBJECT 3

static void push_value(lua_State *L, json_t *v) {
  luaL_checkstack(L, 4, "JSON nested too deeply");
  switch (json_typeof(v)) {
  case JSON_NULL:
    lua_pushlightuserdata(L, NULL);
    break;
  case JSON_TRUE:
    lua_pushboolean(L, 1);
    break;
  case JSON_FALSE:
    lua_pushboolean(L, 0);
    break;
  case JSON_INTEGER:
    lua_pushinteger(L, (lua_Integer)json_integer_value(v));
    break;
  case JSON_REAL:
    lua_pushnumber(L, (lua_Number)json_real_value(v));
    break;
  case JSON_STRING:
    lua_pushlstring(L, json_string_value(v), json_string_length(v));
    break;
  case JSON_ARRAY: {
    size_t n = json_array_size(v);
    lua_createtable(L, n > 0x7fffffff ? 0x7fffffff : (int)n, 0);
    for (size_t i = 0; i < n; i++) {
      push_value(L, json_array_get(v, i));
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    if (!lua_isnil(L, MT_ARRAY)) {
      lua_pushvalue(L, MT_ARRAY);
      lua_setmetatable(L, -2);
    }
    break;
  }
  case JSON_OBJECT: {
    const char *key;
    size_t key_len;
    json_t *item;
    lua_createtable(L, 0, (int)json_object_size(v));
    json_object_keylen_foreach(v, key, key_len, item) {
      lua_pushlstring(L, key, key_len);
      push_value(L, item);
      lua_rawset(L, -3);
    }
    if (!lua_isnil(L, MT_OBJECT)) {
      lua_pushvalue(L, MT_OBJECT);
      lua_setmetatable(L, -2);
    }
    break;
  }
  }
}

/* Runs under lua_pcall, so that a Lua error while building tables cannot leak the jansson tree. */
static int push_root(lua_State *L) {
  push_value(L, lua_touserdata(L, 1));
  return 1;
}

static int l_decode(lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  lua_settop(L, 3);
  if (!lua_isnil(L, MT_ARRAY)) luaL_checktype(L, MT_ARRAY, LUA_TTABLE);
  if (!lua_isnil(L, MT_OBJECT)) luaL_checktype(L, MT_OBJECT, LUA_TTABLE);
  json_error_t err;
  /* a key twice has no one meaning: a reply's {"network": A, "network": B} must not be read as B */
  json_t *root = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &err);
  if (!root) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s at character %d", err.text, err.position);
    return 2;
  }
  lua_pushcfunction(L, push_root);
  lua_pushlightuserdata(L, root);
  lua_pushvalue(L, MT_ARRAY);
  lua_pushvalue(L, MT_OBJECT);
  int status = lua_pcall(L, 3, 1, 0);
  json_decref(root);
  if (status != LUA_OK) return lua_error(L);
  return 1;
}

int luaopen__sg_jsonstrict(lua_State *L) {
  static const luaL_Reg fns[] = {{"decode", l_decode}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
