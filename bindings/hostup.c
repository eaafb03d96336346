/* _sg.hostup: the HostUp v1 per-VM firewall (Proxmox-backed) as data (reference
 * genesis_barrack_hostup.md §3.2): list/add/update/delete rules by position (?pos=), firewall
 * options, and the firewall groups. Synchronous: nothing to wait for. Positions shift on every add
 * (new rules go to pos 0) and delete, so update/delete by pos are NOT idempotent: after a lost
 * response they are never re-sent (flagged like creates, with nothing to match). */
#include <lauxlib.h>
#include <lua.h>

#include "provider.h"

#define FW "/vm/{vmid}/firewall"

static const struct sg_endpoint endpoints[] = {
    {.name = "list_firewall_rules", .method = "GET", .path = FW, .flags = SG_EP_READ,
     .doc = "List a VM's firewall rules (data = [{pos, type, action, proto, dport, source, ...}])"},
    {.name = "add_firewall_rule", .method = "POST", .path = FW, .flags = SG_EP_BODY | SG_EP_CREATE,
     .match_read = "list_firewall_rules", .match_items = "data",
     .doc = "Add a rule {type, action, proto, dport, source, comment, enable}; it lands at pos 0"},
    {.name = "update_firewall_rule", .method = "PUT", .path = FW "?pos={pos}",
     .flags = SG_EP_BODY | SG_EP_CREATE, .doc = "Replace the rule at a position (all 7 fields)"},
    {.name = "delete_firewall_rule", .method = "DELETE", .path = FW "?pos={pos}",
     .flags = SG_EP_CREATE, .doc = "Delete the rule at a position (later rules shift up)"},
    {.name = "update_firewall_options", .method = "PUT", .path = FW "/options", .flags = SG_EP_BODY,
     .doc = "Enable/disable the firewall and set the inbound policy {enable, policy_in}"},
    {.name = "get_firewall_group_assignment", .method = "GET", .path = FW "/group",
     .flags = SG_EP_READ, .doc = "The firewall group assigned to a VM"},
    {.name = "remove_firewall_group", .method = "DELETE", .path = FW "/group",
     .doc = "Remove the firewall group from a VM"},
    {.name = "list_firewall_groups", .method = "GET", .path = "/firewall-groups", .flags = SG_EP_READ,
     .doc = "List firewall groups"},
    {.name = "create_firewall_group", .method = "POST", .path = "/firewall-groups",
     .flags = SG_EP_BODY | SG_EP_CREATE, .doc = "Create a firewall group {name, description, rules}"},
    {.name = "replace_firewall_group", .method = "PUT", .path = "/firewall-groups/{id}",
     .flags = SG_EP_BODY, .doc = "Replace a firewall group's name, description and rules"},
    {0}};

static const struct sg_credential credentials[] = {{"api_key", "HOSTUP_API_KEY", 1, 1}, {0}};
static const char *const redact[] = {"x-api-key", "authorization", NULL};

/* §3.4: v1 {error, message, code, timestamp, requestId}; v2 RFC 7807 {code, title, detail}. */
static const struct sg_kv errors[] = {
    {"code", "code,error"}, {"message", "message,detail,title"}, {"request_id", "requestId"},
    {"request_id_header", "x-request-id"}, {0, 0}};

/* X-API-Key is what every v1 page shows (§3.1). */
static int auth(lua_State *L) {
  return sg_provider_header_auth(L, "X-API-Key", "", "api_key");
}

static const struct sg_provider hostup = {
    .name = "hostup",
    .base_url_env = "SGRUN_HOSTUP_URL",
    .default_base_url = "https://cloud.hostup.se/api",
    .credentials = credentials,
    .endpoints = endpoints,
    .auth = auth,
    .redact = redact,
    .errors = errors,
};

int luaopen__sg_hostup(lua_State *L) {
  return sg_provider_push(L, &hostup);
}
