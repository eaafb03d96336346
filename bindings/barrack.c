/* _sg.barrack: the Barrack (barrack.ai) firewall API as data (reference genesis_barrack_hostup.md
 * §2). Only POST /instances/{id}/security-rules/ is documented; every other path, the auth header
 * and the error body are INFERRED from the Hyperstack API Barrack wraps, and are kept in this one
 * table. Paths keep their trailing slash (§2.1). Rules and attachments are not effective when the
 * 200 arrives ("wait up to 10 minutes", §2.5): conn:wait re-reads until they read ACTIVE. */
#include <lauxlib.h>
#include <lua.h>

#include "provider.h"

#define INST "/instances/{instance_id}"
#define FW "/firewalls/{firewall_id}"
/* Left out of a rule body, both ports mean all ports (§2.3: "Exclude the port_range_min and
 * port_range_max fields ... to allow all ports"), and read back null: a lost create of "tcp from X"
 * must not be taken for an existing "tcp 22 from X". */
#define RULE_DEFAULTS "port_range_min,port_range_max"

static const struct sg_endpoint endpoints[] = {
    {.name = "list_instances", .method = "GET", .path = "/instances/", .flags = SG_EP_READ,
     .doc = "List instances [INFERRED path]"},
    {.name = "get_instance", .method = "GET", .path = INST "/", .flags = SG_EP_READ,
     .doc = "Get instance details, with its security rules [INFERRED path]"},
    {.name = "add_instance_security_rule", .method = "POST", .path = INST "/security-rules/",
     .flags = SG_EP_BODY | SG_EP_CREATE, .async = "activation", .poll = "get_instance",
     .poll_arg = "1", .poll_items = "instance.security_rules", .poll_id = "security_rule.id",
     .match_read = "get_instance", .match_items = "instance.security_rules",
     .match_absent = RULE_DEFAULTS,
     .doc = "Add a security rule to a legacy-tier instance (async: activation)"},
    {.name = "remove_instance_security_rule", .method = "DELETE",
     .path = INST "/security-rules/{rule_id}/",
     .doc = "Remove an instance security rule [INFERRED path]"},
    {.name = "get_instance_firewalls", .method = "GET", .path = INST "/firewalls/",
     .flags = SG_EP_READ, .doc = "Firewalls attached to an instance [INFERRED path]"},
    {.name = "list_firewalls", .method = "GET", .path = "/firewalls/", .flags = SG_EP_READ,
     .items = "firewalls", .doc = "List firewalls (every page) [INFERRED path]"},
    {.name = "get_firewall", .method = "GET", .path = FW "/", .flags = SG_EP_READ,
     .doc = "Get firewall details, rules and attachments [INFERRED path]"},
    {.name = "create_firewall", .method = "POST", .path = "/firewalls/",
     .flags = SG_EP_BODY | SG_EP_CREATE, .match_read = "list_firewalls", .match_items = "firewalls",
     .doc = "Create a firewall {name, description, region} [INFERRED path]"},
    {.name = "delete_firewall", .method = "DELETE", .path = FW "/",
     .doc = "Delete a firewall (detach it first) [INFERRED path]"},
    {.name = "add_firewall_rule", .method = "POST", .path = FW "/firewall-rules/",
     .flags = SG_EP_BODY | SG_EP_CREATE, .async = "activation", .poll = "get_firewall",
     .poll_arg = "1", .poll_items = "firewall.rules", .poll_id = "firewall_rule.id",
     .match_read = "get_firewall", .match_items = "firewall.rules",
     .match_absent = RULE_DEFAULTS,
     .doc = "Add a firewall rule (async: activation) [INFERRED path]"},
    {.name = "remove_firewall_rule", .method = "DELETE", .path = FW "/firewall-rules/{rule_id}/",
     .doc = "Remove a firewall rule [INFERRED path]"},
    {.name = "attach_firewall_to_instances", .method = "POST", .path = FW "/update-attachments/",
     .flags = SG_EP_BODY, .body_key = "instance_ids", .async = "activation", .poll = "get_firewall",
     .poll_arg = "1", .poll_items = "firewall.attachments",
     .doc = "Set the instances a firewall is attached to (replaces the list; async: activation)"},
    {.name = "get_supported_protocols", .method = "GET", .path = "/firewalls/protocols/",
     .flags = SG_EP_READ, .doc = "Protocols a rule may use [INFERRED path]"},
    {.name = "list_instances_available_for_firewall", .method = "GET",
     .path = "/firewalls/available-instances/", .flags = SG_EP_READ,
     .doc = "Instances a firewall can be attached to (query region) [INFERRED path]"},
    {0}};

static const struct sg_credential credentials[] = {{"api_key", "BARRACK_API_KEY", 1, 1}, {0}};
static const char *const redact[] = {"authorization", "x-api-key", "api_key", NULL};

/* INFERRED: ErrorResponse's fields are unknown; the success envelope with success=false. */
static const struct sg_kv errors[] = {
    {"code", "code,error_reason,error"}, {"message", "message,detail"},
    {"request_id", "request_id"}, {"request_id_header", "x-request-id"}, {0, 0}};

/* INFERRED: Hyperstack-style page/page_size; the total is pagination.count. */
static const struct sg_kv paging[] = {
    {"style", "page"}, {"page", "page"}, {"limit", "page_size"}, {"total", "pagination.count"},
    {"size", "100"}, {0, 0}};

/* INFERRED: items read CREATING, then ACTIVE or ERROR. */
static const struct sg_kv async[] = {
    {"activation.state", "status"}, {"activation.pending", "CREATING"},
    {"activation.success", "ACTIVE"}, {"activation.failure", "ERROR"}, {0, 0}};

/* INFERRED: the auth header is not public (§2.1); Bearer is the more common of the two guesses. */
static int auth(lua_State *L) {
  return sg_provider_header_auth(L, "Authorization", "Bearer ", "api_key");
}

static const struct sg_provider barrack = {
    .name = "barrack",
    .base_url_env = "SGRUN_BARRACK_URL",
    .default_base_url = "https://barrack.ai/api",
    .credentials = credentials,
    .endpoints = endpoints,
    .auth = auth,
    .redact = redact,
    .errors = errors,
    .paging = paging,
    .async = async,
};

int luaopen__sg_barrack(lua_State *L) {
  return sg_provider_push(L, &barrack);
}
