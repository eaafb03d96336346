/* _sg.genesis: the Genesis Cloud compute API security groups as data (reference
 * genesis_barrack_hostup.md §1): list (page/per_page), create (201), get, update (PATCH, full
 * rule list), delete (204), and attachment through PATCH /instances/{id}. Groups are async by
 * status: conn:wait re-reads until "created" or "error", and after a delete until 404.
 * Auth: "Authorization: Bearer" (the current docs; X-Auth-Token is deprecated). */
#include <lauxlib.h>
#include <lua.h>

#include "provider.h"

static const struct sg_endpoint endpoints[] = {
    {.name = "list_security_groups", .method = "GET", .path = "/security-groups",
     .flags = SG_EP_READ, .items = "security_groups",
     .doc = "List security groups (every page; pass page/per_page for one page)"},
    {.name = "create_security_group", .method = "POST", .path = "/security-groups",
     .flags = SG_EP_BODY | SG_EP_CREATE, .async = "status", .poll = "get_security_group",
     .poll_arg = "@security_group.id", .match_read = "list_security_groups",
     .match_items = "security_groups",
     .doc = "Create a security group {name, description, region, rules} (async: status)"},
    {.name = "get_security_group", .method = "GET", .path = "/security-groups/{security_group_id}",
     .flags = SG_EP_READ, .doc = "Get a security group"},
    {.name = "update_security_group", .method = "PATCH", .path = "/security-groups/{security_group_id}",
     .flags = SG_EP_BODY, .async = "status", .poll = "get_security_group", .poll_arg = "1",
     .doc = "Update a security group; rules is the full desired list (async: status)"},
    {.name = "delete_security_group", .method = "DELETE", .path = "/security-groups/{security_group_id}",
     .async = "gone", .poll = "get_security_group", .poll_arg = "1",
     .doc = "Delete a security group (204; async: gone when it reads 404)"},
    {.name = "list_instances", .method = "GET", .path = "/instances", .flags = SG_EP_READ,
     .items = "instances", .doc = "List instances (every page)"},
    {.name = "get_instance", .method = "GET", .path = "/instances/{instance_id}", .flags = SG_EP_READ,
     .doc = "Get an instance"},
    {.name = "update_instance", .method = "PATCH", .path = "/instances/{instance_id}",
     .flags = SG_EP_BODY, .doc = "Update an instance (name, security_groups list/attach/detach)"},
    {.name = "attach_security_group", .method = "PATCH", .path = "/instances/{instance_id}",
     .flags = SG_EP_BODY, .body_key = "security_groups.attach",
     .doc = "Attach one security group to an instance"},
    {.name = "detach_security_group", .method = "PATCH", .path = "/instances/{instance_id}",
     .flags = SG_EP_BODY, .body_key = "security_groups.detach",
     .doc = "Detach one security group from an instance"},
    {0}};

static const struct sg_credential credentials[] = {{"token", "GENESISCLOUD_TOKEN", 1, 1}, {0}};
static const char *const redact[] = {"authorization", "x-auth-token", NULL};

/* §1.6: {code, message}, both strings. */
static const struct sg_kv errors[] = {
    {"code", "code"}, {"message", "message"}, {"request_id", "request_id"},
    {"request_id_header", "x-request-id"}, {0, 0}};

/* §1.6: page/per_page ("positive int <= 100"), total_count. */
static const struct sg_kv paging[] = {
    {"style", "page"}, {"page", "page"}, {"limit", "per_page"}, {"total", "total_count"},
    {"size", "100"}, {"max", "100"}, {0, 0}};

/* §1.4: unknown statuses (legacy "enqueued", ...) count as in progress. */
static const struct sg_kv async[] = {
    {"status.state", "security_group.status"}, {"status.success", "created"},
    {"status.failure", "error"}, {0, 0}};

static int auth(lua_State *L) {
  return sg_provider_header_auth(L, "Authorization", "Bearer ", "token");
}

static const struct sg_provider genesis = {
    .name = "genesis",
    .base_url_env = "SGRUN_GENESIS_URL",
    .default_base_url = "https://api.genesiscloud.com/compute/v1",
    .credentials = credentials,
    .endpoints = endpoints,
    .auth = auth,
    .redact = redact,
    .errors = errors,
    .paging = paging,
    .async = async,
};

int luaopen__sg_genesis(lua_State *L) {
  return sg_provider_push(L, &genesis);
}
