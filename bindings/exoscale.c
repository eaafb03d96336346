/* _sg.exoscale: the EXO2-HMAC-SHA256 request signer (reference/exoscale.md §1), byte-exact.
 *
 *   sign{method=, path=, query=, body=, key=, secret=, expires=}
 *     -> authorization header value, base64 signature, the signed message
 *
 * The message is  METHOD SP PATH LF BODY LF QUERY-VALUES LF LF EXPIRES  (no trailing LF), where
 * PATH is the path exactly as sent on the wire (prefix included, no query), BODY the exact body
 * bytes, and QUERY-VALUES the percent-decoded values of the single-valued query parameters,
 * concatenated in bytewise order of their names (Go url.ParseQuery + sort.Strings semantics: a
 * name given more than once is left out of both the values and the signed-query-args list).
 *
 * `query` is either the raw query string as on the wire ("k1=v1&k2=v2", without "?") or a table
 * {name = value} whose values are strings or numbers (already decoded), or lists of them (left
 * out when they hold more than one value, as Go does). `expires` defaults to now + 600 s.
 * Both the client bindings and the emulator's verifier use this one function, so the two cannot
 * disagree about canonicalisation. No policy lives here: it only computes. */
#include <lauxlib.h>
#include <lua.h>

#include "provider.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

struct qparam {
  char *name;
  size_t name_len;
  char *value;
  size_t value_len;
  int count; /* how many times the name occurred; only count == 1 is signed */
};

struct qlist {
  struct qparam *items;
  size_t len, cap;
};

static void qlist_free(struct qlist *q) {
  for (size_t i = 0; i < q->len; i++) {
    free(q->items[i].name);
    free(q->items[i].value);
  }
  free(q->items);
  q->items = NULL;
  q->len = q->cap = 0;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Go url.QueryUnescape: '+' is a space, %XX a byte; a malformed escape makes the pair invalid.
 * Returns a malloc'd buffer (length in *outlen) or NULL when malformed. */
static char *query_unescape(const char *s, size_t len, size_t *outlen) {
  char *out = malloc(len + 1);
  if (!out) return NULL;
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] == '%') {
      if (i + 2 >= len) { free(out); return NULL; }
      int hi = hexval((unsigned char)s[i + 1]), lo = hexval((unsigned char)s[i + 2]);
      if (hi < 0 || lo < 0) { free(out); return NULL; }
      out[o++] = (char)(hi << 4 | lo);
      i += 2;
    } else if (s[i] == '+') {
      out[o++] = ' ';
    } else {
      out[o++] = s[i];
    }
  }
  out[o] = '\0';
  *outlen = o;
  return out;
}

/* Adds one (name, value) occurrence; returns 0 when out of memory. Takes ownership of both. */
static int qlist_add(struct qlist *q, char *name, size_t nlen, char *value, size_t vlen) {
  for (size_t i = 0; i < q->len; i++) {
    if (q->items[i].name_len == nlen && memcmp(q->items[i].name, name, nlen) == 0) {
      q->items[i].count++;
      free(name);
      free(value);
      return 1;
    }
  }
  if (q->len == q->cap) {
    size_t ncap = q->cap ? q->cap * 2 : 8;
    struct qparam *n = realloc(q->items, ncap * sizeof *n);
    if (!n) { free(name); free(value); return 0; }
    q->items = n;
    q->cap = ncap;
  }
  q->items[q->len++] = (struct qparam){name, nlen, value, vlen, 1};
  return 1;
}

/* Go url.ParseQuery: split on '&'; pairs containing ';' or a bad escape are dropped; a pair
 * without '=' has the empty value. Empty segments are skipped. */
static int parse_raw_query(struct qlist *q, const char *s, size_t len) {
  size_t start = 0;
  while (start <= len) {
    size_t end = start;
    while (end < len && s[end] != '&') end++;
    const char *seg = s + start;
    size_t seglen = end - start;
    if (seglen > 0 && !memchr(seg, ';', seglen)) {
      const char *eq = memchr(seg, '=', seglen);
      size_t klen = eq ? (size_t)(eq - seg) : seglen;
      size_t nlen, vlen;
      char *name = query_unescape(seg, klen, &nlen);
      char *value = eq ? query_unescape(eq + 1, seglen - klen - 1, &vlen) : query_unescape("", 0, &vlen);
      if (name && value) {
        if (!qlist_add(q, name, nlen, value, vlen)) return 0;
      } else {
        free(name);
        free(value);
      }
    }
    start = end + 1;
  }
  return 1;
}

static char *dup_bytes(const char *s, size_t len) {
  char *d = malloc(len + 1);
  if (d) {
    memcpy(d, s, len);
    d[len] = '\0';
  }
  return d;
}

/* Reads a {name = value | {values...}} table at idx. Returns 0 on out of memory, -1 on a bad
 * value type (message pushed). */
static int parse_table_query(lua_State *L, int idx, struct qlist *q) {
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TSTRING) {
      lua_pop(L, 2);
      lua_pushstring(L, "query: parameter names must be strings");
      return -1;
    }
    size_t nlen, vlen;
    const char *n = lua_tolstring(L, -2, &nlen);
    int count = 1;
    const char *v = NULL;
    if (lua_type(L, -1) == LUA_TTABLE) {
      count = (int)luaL_len(L, -1);
      if (count >= 1) {
        lua_rawgeti(L, -1, 1);
        if (!lua_isstring(L, -1)) {
          lua_pop(L, 3);
          lua_pushfstring(L, "query: values of '%s' must be strings or numbers", n);
          return -1;
        }
        v = lua_tolstring(L, -1, &vlen);
        lua_pop(L, 1); /* the string stays alive in the list */
      } else {
        v = "";
        vlen = 0;
      }
    } else if (lua_isstring(L, -1)) {
      v = lua_tolstring(L, -1, &vlen);
    } else {
      lua_pop(L, 2);
      lua_pushfstring(L, "query: value of '%s' must be a string, a number or a list", n);
      return -1;
    }
    if (count >= 1) {
      char *name = dup_bytes(n, nlen), *value = dup_bytes(v, vlen);
      if (!name || !value) {
        free(name);
        free(value);
        lua_pop(L, 2);
        return 0;
      }
      if (!qlist_add(q, name, nlen, value, vlen)) {
        lua_pop(L, 2);
        return 0;
      }
      /* a list of several values counts as a repeated name */
      for (size_t i = 0; i < q->len; i++)
        if (q->items[i].name_len == nlen && memcmp(q->items[i].name, n, nlen) == 0)
          q->items[i].count = count;
    }
    lua_pop(L, 1);
  }
  return 1;
}

/* Bytewise order, as Go's sort.Strings. */
static int cmp_param(const void *a, const void *b) {
  const struct qparam *x = a, *y = b;
  size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
  int c = memcmp(x->name, y->name, n);
  if (c) return c;
  return (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

static const char *opt_field(lua_State *L, const char *field, size_t *len, int required) {
  lua_getfield(L, 1, field);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    if (required) luaL_error(L, "sign: '%s' is required", field);
    *len = 0;
    return "";
  }
  if (lua_type(L, -1) != LUA_TSTRING)
    luaL_error(L, "sign: '%s' must be a string", field);
  const char *s = lua_tolstring(L, -1, len);
  lua_pop(L, 1); /* still referenced by the argument table */
  return s;
}

static int l_sign(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  size_t mlen, plen, blen, klen, slen;
  const char *method = opt_field(L, "method", &mlen, 1);
  const char *path = opt_field(L, "path", &plen, 1);
  const char *body = opt_field(L, "body", &blen, 0);
  const char *key = opt_field(L, "key", &klen, 1);
  const char *secret = opt_field(L, "secret", &slen, 1);
  if (memchr(path, '?', plen)) return luaL_error(L, "sign: 'path' must not contain the query");

  lua_Integer expires;
  lua_getfield(L, 1, "expires");
  if (lua_isnil(L, -1)) {
    expires = (lua_Integer)time(NULL) + 600;
  } else {
    int isnum;
    expires = lua_tointegerx(L, -1, &isnum);
    if (!isnum) return luaL_error(L, "sign: 'expires' must be an integer (Unix seconds)");
  }
  lua_pop(L, 1);

  struct qlist q = {0};
  int ok = 1;
  lua_getfield(L, 1, "query");
  int qidx = lua_gettop(L);
  if (lua_type(L, qidx) == LUA_TSTRING) {
    size_t qlen;
    const char *qs = lua_tolstring(L, qidx, &qlen);
    if (qlen && qs[0] == '?') { qs++; qlen--; }
    ok = parse_raw_query(&q, qs, qlen);
  } else if (lua_type(L, qidx) == LUA_TTABLE) {
    ok = parse_table_query(L, qidx, &q);
    if (ok < 0) {
      qlist_free(&q);
      return lua_error(L);
    }
  } else if (!lua_isnil(L, qidx)) {
    return luaL_error(L, "sign: 'query' must be a string or a table");
  }
  lua_pop(L, 1);
  if (!ok) {
    qlist_free(&q);
    return luaL_error(L, "sign: out of memory");
  }
  if (q.len > 1) qsort(q.items, q.len, sizeof *q.items, cmp_param);

  /* The message. luaL_Buffer may raise (memory), so the query list is copied in first. */
  luaL_Buffer names;
  luaL_Buffer msg;
  int nnames = 0;
  luaL_buffinit(L, &msg);
  luaL_addlstring(&msg, method, mlen);
  luaL_addchar(&msg, ' ');
  luaL_addlstring(&msg, path, plen);
  luaL_addchar(&msg, '\n');
  luaL_addlstring(&msg, body, blen);
  luaL_addchar(&msg, '\n');
  for (size_t i = 0; i < q.len; i++)
    if (q.items[i].count == 1) luaL_addlstring(&msg, q.items[i].value, q.items[i].value_len);
  luaL_addstring(&msg, "\n\n");
  lua_pushinteger(L, expires);
  luaL_addvalue(&msg);
  luaL_pushresult(&msg);
  int msg_idx = lua_gettop(L);

  luaL_buffinit(L, &names);
  for (size_t i = 0; i < q.len; i++) {
    if (q.items[i].count != 1) continue;
    if (nnames++) luaL_addchar(&names, ';');
    luaL_addlstring(&names, q.items[i].name, q.items[i].name_len);
  }
  luaL_pushresult(&names);
  int names_idx = lua_gettop(L);
  qlist_free(&q);

  size_t msglen;
  const char *m = lua_tolstring(L, msg_idx, &msglen);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int maclen = 0;
  if (!HMAC(EVP_sha256(), secret, (int)slen, (const unsigned char *)m, msglen, mac, &maclen))
    return luaL_error(L, "sign: HMAC failed");
  unsigned char sig[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
  int siglen = EVP_EncodeBlock(sig, mac, (int)maclen);

  luaL_Buffer hdr;
  luaL_buffinit(L, &hdr);
  luaL_addstring(&hdr, "EXO2-HMAC-SHA256 credential=");
  luaL_addlstring(&hdr, key, klen);
  if (nnames) {
    luaL_addstring(&hdr, ",signed-query-args=");
    lua_pushvalue(L, names_idx);
    luaL_addvalue(&hdr);
  }
  luaL_addstring(&hdr, ",expires=");
  lua_pushinteger(L, expires);
  luaL_addvalue(&hdr);
  luaL_addstring(&hdr, ",signature=");
  luaL_addlstring(&hdr, (const char *)sig, (size_t)siglen);
  luaL_pushresult(&hdr);
  lua_pushlstring(L, (const char *)sig, (size_t)siglen);
  lua_pushvalue(L, msg_idx);
  return 3;
}

/* The Exoscale API v2 security-group endpoints as data (reference/exoscale.md §3-§5) and the auth
 * hook that signs every attempt. Every mutation answers an operation {id, state, reason, message,
 * reference}; conn:wait polls get_operation until it leaves "pending". add_rule_to_security_group's
 * reference.id is the GROUP (§4.1), so the new rule is found by re-reading the group (match_read). */
#define SGP "/security-group/{id}"

static const struct sg_endpoint endpoints[] = {
    {.name = "list_zones", .method = "GET", .path = "/zone", .flags = SG_EP_READ,
     .doc = "List zones and their API endpoints"},
    {.name = "list_security_groups", .method = "GET", .path = "/security-group", .flags = SG_EP_READ,
     .doc = "List security groups (query visibility = private|public)"},
    {.name = "get_security_group", .method = "GET", .path = SGP, .flags = SG_EP_READ,
     .doc = "Get a security group with its rules and external sources"},
    {.name = "create_security_group", .method = "POST", .path = "/security-group",
     .flags = SG_EP_BODY | SG_EP_CREATE, .async = "operation",
     .match_read = "list_security_groups", .match_items = "security-groups",
     .doc = "Create a security group {name, description} (async: operation)"},
    {.name = "delete_security_group", .method = "DELETE", .path = SGP, .async = "operation",
     .doc = "Delete a security group (async: operation)"},
    {.name = "add_rule_to_security_group", .method = "POST", .path = SGP "/rules",
     .flags = SG_EP_BODY | SG_EP_CREATE, .async = "operation", .match_read = "get_security_group",
     .match_items = "rules", .doc = "Add a rule (async: operation; wait also returns the new rule)"},
    {.name = "delete_rule_from_security_group", .method = "DELETE", .path = SGP "/rules/{rule_id}",
     .async = "operation", .doc = "Delete a rule (async: operation)"},
    {.name = "add_external_source_to_security_group", .method = "PUT", .path = SGP ":add-source",
     .flags = SG_EP_BODY, .async = "operation", .body_key = "cidr",
     .doc = "Add an external source CIDR (async: operation)"},
    {.name = "remove_external_source_from_security_group", .method = "PUT",
     .path = SGP ":remove-source", .flags = SG_EP_BODY, .async = "operation", .body_key = "cidr",
     .doc = "Remove an external source CIDR (async: operation)"},
    {.name = "attach_instance_to_security_group", .method = "PUT", .path = SGP ":attach",
     .flags = SG_EP_BODY, .async = "operation", .body_key = "instance.id",
     .doc = "Attach an instance (id or {instance = {id = ...}}) (async: operation)"},
    {.name = "detach_instance_from_security_group", .method = "PUT", .path = SGP ":detach",
     .flags = SG_EP_BODY, .async = "operation", .body_key = "instance.id",
     .doc = "Detach an instance (async: operation)"},
    {.name = "get_operation", .method = "GET", .path = "/operation/{id}", .flags = SG_EP_READ,
     .doc = "Get an async operation"},
    {.name = "list_instances", .method = "GET", .path = "/instance", .flags = SG_EP_READ,
     .doc = "List the instances of the zone"},
    {.name = "get_instance", .method = "GET", .path = "/instance/{id}", .flags = SG_EP_READ,
     .doc = "Get an instance"},
    {0}};

/* The key is secret too: with a signature it sends, a server that echoes the Authorization
 * header would hand both to whoever reads the error or trace; and it names the account. */
static const struct sg_credential credentials[] = {
    {"key", "EXOSCALE_API_KEY", 1, 1},
    {"secret", "EXOSCALE_API_SECRET", 1, 1},
    {0}};

/* Security groups are org-global but only zone endpoints exist (§3.1): ch-gva-2 by convention. */
static const struct sg_kv defaults[] = {{"zone", "ch-gva-2"}, {0, 0}};
static const char *const redact[] = {"authorization", NULL};

/* §5.1: {"message"} classically, RFC 9457 fields on newer services, {"error"} on 429. */
static const struct sg_kv errors[] = {
    {"code", "code,type"}, {"message", "message,detail,title,error"}, {"request_id", "request_id"},
    {"request_id_header", "x-request-id"}, {0, 0}};

/* §4: pending -> success | failure | timeout; reference.id names the resource. Of the §4.1
 * failure reasons, "conflict" ends a create that was a duplicate and "not-found" a delete of
 * what is already gone: how a re-sent create or delete learns that its first attempt landed. */
static const struct sg_kv async[] = {
    {"operation.id", "id"}, {"operation.get", "get_operation"}, {"operation.state", "state"},
    {"operation.pending", "pending"}, {"operation.success", "success"},
    {"operation.failure", "failure,timeout"}, {"operation.reason", "reason,message"},
    {"operation.result", "reference"}, {"operation.duplicate", "conflict"},
    {"operation.gone", "not-found"}, {0, 0}};

/* auth(request, credentials): signs method, wire path, raw query and body bytes exactly as they
 * will be sent. Called again on every retry, so an attempt never carries a stale expiry. */
static int auth(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  const char *url = sg_provider_field(L, 1, "url");
  const char *method = sg_provider_field(L, 1, "method");
  if (!url || !method) return luaL_error(L, "exoscale auth: request needs method and url");
  /* path = from the first "/" after "scheme://host" up to "?" (the signer wants it without) */
  const char *p = strstr(url, "://");
  p = p ? strchr(p + 3, '/') : NULL;
  if (!p) p = "/";
  const char *q = strchr(p, '?');
  size_t plen = q ? (size_t)(q - p) : strlen(p);

  lua_pushcfunction(L, l_sign);
  lua_createtable(L, 0, 6);
  lua_pushstring(L, method);
  lua_setfield(L, -2, "method");
  lua_pushlstring(L, p, plen);
  lua_setfield(L, -2, "path");
  if (q) {
    lua_pushstring(L, q + 1);
    lua_setfield(L, -2, "query");
  }
  lua_getfield(L, 1, "body");
  lua_setfield(L, -2, "body");
  lua_getfield(L, 2, "key");
  lua_setfield(L, -2, "key");
  lua_getfield(L, 2, "secret");
  lua_setfield(L, -2, "secret");
  lua_call(L, 1, 1);
  sg_provider_set_header(L, 1, "Authorization", lua_tostring(L, -1));
  return 0;
}

static const struct sg_provider exoscale = {
    .name = "exoscale",
    .base_url_env = "SGRUN_EXOSCALE_URL",
    .default_base_url = "https://api-{zone}.exoscale.com/v2",
    .defaults = defaults,
    .credentials = credentials,
    .endpoints = endpoints,
    .auth = auth,
    .redact = redact,
    .errors = errors,
    .async = async,
};


/* The provider description (see provider.h) plus sign{...}, the signer callable from Lua. */
int luaopen__sg_exoscale(lua_State *L) {
  sg_provider_push(L, &exoscale);
  lua_pushcfunction(L, l_sign);
  lua_setfield(L, -2, "sign");
  return 1;
}
