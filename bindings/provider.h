#ifndef SG_PROVIDER_H
#define SG_PROVIDER_H
/* Provider descriptions as data. Each bindings/<provider>.c fills one struct sg_provider with C
 * arrays (its endpoint table, credentials, error and async fields) plus its auth hook, and its
 * luaopen__sg_<provider> returns sg_provider_push(L, &def): a plain Lua table that the
 * provider-neutral Lua layer (stdlib/sg/connect.lua, retry.lua, wait.lua, errors.lua) turns into
 * connection methods. Nothing provider-specific lives outside those files, and nothing generic
 * lives inside them. */
#include <lua.h>

/* Endpoint flags. */
#define SG_EP_BODY 0x01   /* takes a JSON body (the argument after the path parameters) */
#define SG_EP_READ 0x02   /* a read: safe to retry, allowed under --dry-run */
#define SG_EP_CREATE 0x04 /* non-idempotent: a re-send after a possibly delivered attempt must
                             re-read and match first (see match_read) */

struct sg_endpoint {
  const char *name;   /* Lua method: the vendor's operation in snake_case */
  const char *method; /* HTTP method */
  const char *path;   /* template relative to the base URL; {param} are filled from the
                         connection's scope (e.g. project_id) or else from positional arguments,
                         in order; a "?name={param}" part is allowed */
  unsigned flags;
  const char *async;     /* NULL (done when the response arrives) or the async kind: "operation",
                            "tasks", "status", "gone", "activation" (see stdlib/sg/wait.lua) */
  const char *body_key;  /* when set, a non-table (or list) body argument is sent as
                            {body_key = value}; dots nest ("instance.id") */
  const char *items;     /* paged lists: the key holding each page's items */
  const char *poll;      /* status/gone/activation: the endpoint that re-reads the resource */
  const char *poll_arg;  /* its argument: "1" = this call's first argument, "@a.b" = a field of
                            this call's response */
  const char *poll_items; /* activation: the list (dotted path) in the poll response */
  const char *poll_id;    /* activation: response field with the new item's id; NULL = all items */
  const char *match_read;  /* creates: endpoint whose response lists existing items ("1" arg) */
  const char *match_items; /* the list (dotted path) in that response */
  const char *match_skip;  /* body fields the listed items do not echo ("tags"), comma-separated */
  const char *match_absent; /* body fields that a body leaves out to ask for the provider's
                               default ("all ports"), comma-separated: a body without one matches
                               only an item without it (absent, null or ""), never any value. A
                               field the provider fills in on read when it is left out is not
                               listed (it cannot be told from a value that was sent). */
  const char *doc;         /* one line: what it does (stubs, help) */
};

struct sg_credential {
  const char *name; /* key in sg.connect opts and in the profile file */
  const char *env;  /* the vendor's environment variable */
  int secret;       /* never printed */
  int required;
};

/* Pairs of strings: {key, value}, ..., {NULL, NULL}. Used for the small per-provider dictionaries
 * (paging, errors, async) so that adding a field does not change the struct. */
struct sg_kv {
  const char *key, *value;
};

struct sg_provider {
  const char *name;
  const char *base_url_env;     /* "SGRUN_GCORE_URL" */
  const char *default_base_url; /* may contain {opt} placeholders filled from sg.connect opts */
  const struct sg_kv *defaults; /* defaults for those opts: {"zone", "ch-gva-2"} */
  const char *const *scope;     /* credential/opt names that fill path placeholders */
  const struct sg_credential *credentials;
  const struct sg_endpoint *endpoints;
  lua_CFunction auth; /* auth(request, credentials): adds headers to request.headers */
  const char *const *redact; /* header names (lower case) that carry secrets */
  const struct sg_kv *errors; /* code / message / request_id: comma-separated candidate fields */
  const struct sg_kv *paging; /* style = offset|page and the parameter and field names; size =
                                 the page size sent by default, max = the largest the provider
                                 documents (a larger page_size is refused before any request) */
  const struct sg_kv *async;  /* per kind: state field, pending/success/failure values, ... */
};

/* Pushes the provider's description table. */
int sg_provider_push(lua_State *L, const struct sg_provider *p);

/* For auth hooks: the string field `key` of the table at idx (NULL when absent). */
const char *sg_provider_field(lua_State *L, int idx, const char *key);

/* For auth hooks: sets request.headers[name] = value on the request table at idx. */
void sg_provider_set_header(lua_State *L, int idx, const char *name, const char *value);

/* An auth hook for the common "one header carrying the key" schemes: reads
 * credentials.<cred> and sets header <name> to prefix .. value. */
int sg_provider_header_auth(lua_State *L, const char *name, const char *prefix, const char *cred);

#endif
