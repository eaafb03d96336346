/* _sg.provider: converts the provider descriptions of bindings/<provider>.c (C arrays of
 * structs, see provider.h) into Lua tables. The module itself only lists the provider names, so
 * that the Lua layer knows which bindings exist without hard-coding them twice. */
#include <lauxlib.h>
#include <lua.h>


#include "provider.h"

static void set_string(lua_State *L, const char *key, const char *value) {
  if (!value) return;
  lua_pushstring(L, value);
  lua_setfield(L, -2, key);
}

static void push_kv(lua_State *L, const struct sg_kv *kv) {
  lua_newtable(L);
  for (; kv && kv->key; kv++) set_string(L, kv->key, kv->value);
}

static void push_names(lua_State *L, const char *const *names) {
  lua_newtable(L);
  for (int i = 0; names && names[i]; i++) {
    lua_pushstring(L, names[i]);
    lua_rawseti(L, -2, i + 1);
  }
}

static void push_endpoint(lua_State *L, const struct sg_endpoint *e) {
  lua_createtable(L, 0, 20);
  set_string(L, "name", e->name);
  set_string(L, "method", e->method);
  set_string(L, "path", e->path);
  lua_pushboolean(L, (e->flags & SG_EP_BODY) != 0);
  lua_setfield(L, -2, "body");
  lua_pushboolean(L, (e->flags & SG_EP_READ) != 0);
  lua_setfield(L, -2, "read");
  lua_pushboolean(L, (e->flags & SG_EP_CREATE) != 0);
  lua_setfield(L, -2, "create");
  set_string(L, "async", e->async);
  set_string(L, "body_key", e->body_key);
  set_string(L, "items", e->items);
  set_string(L, "poll", e->poll);
  set_string(L, "poll_arg", e->poll_arg);
  set_string(L, "poll_items", e->poll_items);
  set_string(L, "poll_id", e->poll_id);
  set_string(L, "match_read", e->match_read);
  set_string(L, "match_items", e->match_items);
  set_string(L, "match_skip", e->match_skip);
  set_string(L, "match_absent", e->match_absent);
  set_string(L, "doc", e->doc);
}

int sg_provider_push(lua_State *L, const struct sg_provider *p) {
  lua_createtable(L, 0, 16);
  set_string(L, "name", p->name);
  set_string(L, "base_url_env", p->base_url_env);
  set_string(L, "default_base_url", p->default_base_url);
  push_kv(L, p->defaults);
  lua_setfield(L, -2, "defaults");
  push_names(L, p->scope);
  lua_setfield(L, -2, "scope");

  lua_newtable(L);
  for (int i = 0; p->credentials && p->credentials[i].name; i++) {
    const struct sg_credential *c = &p->credentials[i];
    lua_createtable(L, 0, 4);
    set_string(L, "name", c->name);
    set_string(L, "env", c->env);
    lua_pushboolean(L, c->secret);
    lua_setfield(L, -2, "secret");
    lua_pushboolean(L, c->required);
    lua_setfield(L, -2, "required");
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "credentials");

  /* endpoints: a list in table order (stubs, docs) and a map by name (dispatch) */
  lua_newtable(L);
  lua_newtable(L);
  for (int i = 0; p->endpoints && p->endpoints[i].name; i++) {
    push_endpoint(L, &p->endpoints[i]);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -4, i + 1);
    lua_setfield(L, -2, p->endpoints[i].name);
  }
  lua_setfield(L, -3, "endpoint");
  lua_setfield(L, -2, "endpoints");

  if (p->auth) {
    lua_pushcfunction(L, p->auth);
    lua_setfield(L, -2, "auth");
  }
  push_names(L, p->redact);
  lua_setfield(L, -2, "redact");
  push_kv(L, p->errors);
  lua_setfield(L, -2, "errors");
  push_kv(L, p->paging);
  lua_setfield(L, -2, "paging");
  push_kv(L, p->async);
  lua_setfield(L, -2, "async");
  return 1;
}

const char *sg_provider_field(lua_State *L, int idx, const char *key) {
  idx = lua_absindex(L, idx);
  lua_getfield(L, idx, key);
  const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  lua_pop(L, 1); /* the string stays referenced by the table */
  return s;
}

void sg_provider_set_header(lua_State *L, int idx, const char *name, const char *value) {
  idx = lua_absindex(L, idx);
  if (lua_getfield(L, idx, "headers") != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, idx, "headers");
  }
  lua_pushstring(L, value);
  lua_setfield(L, -2, name);
  lua_pop(L, 1);
}

int sg_provider_header_auth(lua_State *L, const char *name, const char *prefix, const char *cred) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  const char *value = sg_provider_field(L, 2, cred);
  if (!value) return luaL_error(L, "auth: credential '%s' is missing", cred);
  lua_pushstring(L, prefix);
  lua_pushstring(L, value);
  lua_concat(L, 2);
  sg_provider_set_header(L, 1, name, lua_tostring(L, -1));
  lua_pop(L, 1);
  return 0;
}
