/* _sg.crypto: the digests and encodings the providers' auth schemes need, over OpenSSL. */
#include <lauxlib.h>
#include <lua.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <string.h>

static int l_hmac_sha256(lua_State *L) {
  size_t klen, mlen;
  const char *key = luaL_checklstring(L, 1, &klen);
  const char *msg = luaL_checklstring(L, 2, &mlen);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int outlen = 0;
  if (!HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, mlen, out, &outlen))
    return luaL_error(L, "hmac_sha256: OpenSSL failed");
  lua_pushlstring(L, (const char *)out, outlen);
  return 1;
}

static int l_sha256(lua_State *L) {
  size_t len;
  const char *msg = luaL_checklstring(L, 1, &len);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int outlen = 0;
  if (!EVP_Digest(msg, len, out, &outlen, EVP_sha256(), NULL))
    return luaL_error(L, "sha256: OpenSSL failed");
  lua_pushlstring(L, (const char *)out, outlen);
  return 1;
}

static int l_hex_encode(lua_State *L) {
  static const char digits[] = "0123456789abcdef";
  size_t len;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, len * 2);
  for (size_t i = 0; i < len; i++) {
    out[2 * i] = digits[s[i] >> 4];
    out[2 * i + 1] = digits[s[i] & 15];
  }
  luaL_pushresultsize(&b, len * 2);
  return 1;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Decoders return nil and a message on bad input: the input usually comes from outside. */
static int l_hex_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  if (len % 2) {
    luaL_pushfail(L);
    lua_pushstring(L, "hex_decode: odd number of digits");
    return 2;
  }
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, len / 2);
  for (size_t i = 0; i < len; i += 2) {
    int hi = hexval((unsigned char)s[i]), lo = hexval((unsigned char)s[i + 1]);
    if (hi < 0 || lo < 0) {
      luaL_pushfail(L);
      lua_pushfstring(L, "hex_decode: invalid digit at position %d", (int)(hi < 0 ? i + 1 : i + 2));
      return 2;
    }
    out[i / 2] = (char)(hi << 4 | lo);
  }
  luaL_pushresultsize(&b, len / 2);
  return 1;
}

static int l_base64_encode(lua_State *L) {
  size_t len;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
  size_t outlen = 4 * ((len + 2) / 3);
  luaL_Buffer b;
  unsigned char *out = (unsigned char *)luaL_buffinitsize(L, &b, outlen + 1);
  int n = EVP_EncodeBlock(out, s, (int)len);
  luaL_pushresultsize(&b, (size_t)n);
  return 1;
}

static int is_b64(int c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

/* Strict RFC 4648 base64: padded, standard alphabet, no whitespace. */
static int l_base64_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  size_t pad = 0;
  const char *why = NULL;
  if (len % 4) why = "length is not a multiple of 4";
  else {
    if (len && s[len - 1] == '=') pad++;
    if (len > 1 && s[len - 2] == '=') pad++;
    for (size_t i = 0; i < len - pad && !why; i++)
      if (!is_b64((unsigned char)s[i])) why = "invalid character";
  }
  if (why) {
    luaL_pushfail(L);
    lua_pushfstring(L, "base64_decode: %s", why);
    return 2;
  }
  luaL_Buffer b;
  unsigned char *out = (unsigned char *)luaL_buffinitsize(L, &b, len / 4 * 3 + 1);
  int n = EVP_DecodeBlock(out, (const unsigned char *)s, (int)len);
  if (n < 0) {
    luaL_pushfail(L);
    lua_pushstring(L, "base64_decode: invalid input");
    return 2;
  }
  luaL_pushresultsize(&b, (size_t)n - pad);
  return 1;
}

static int l_random_bytes(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 0 && n <= 1 << 20, 1, "expected 0..1048576 bytes");
  luaL_Buffer b;
  unsigned char *out = (unsigned char *)luaL_buffinitsize(L, &b, (size_t)n);
  if (RAND_bytes(out, (int)n) != 1) return luaL_error(L, "random_bytes: OpenSSL RNG failed");
  luaL_pushresultsize(&b, (size_t)n);
  return 1;
}

int luaopen__sg_crypto(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"hmac_sha256", l_hmac_sha256},     {"sha256", l_sha256},
      {"hex_encode", l_hex_encode},       {"hex_decode", l_hex_decode},
      {"base64_encode", l_base64_encode}, {"base64_decode", l_base64_decode},
      {"random_bytes", l_random_bytes},   {NULL, NULL},
  };
  luaL_newlib(L, fns);
  return 1;
}
