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

int luaopen__sg_exoscale(lua_State *L) {
  static const luaL_Reg fns[] = {{"sign", l_sign}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
