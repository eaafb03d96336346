/* _sg.gcore: the Gcore Cloud API as data (reference/gcore.md): security groups (v1 list, get,
 * delete, copy, revert, instances; v2 create, update, add rule, delete rule), assignment to
 * instances by name, and the tasks API. The v2 mutations answer {"tasks": [ids]}; conn:wait polls
 * every id through get_task. Auth is "Authorization: APIKey <token>" (§1.2, exact prefix). */
#include <lauxlib.h>
#include <lua.h>

#include "provider.h"

#define SG "/cloud/v1/securitygroups/{project_id}/{region_id}"
#define SG2 "/cloud/v2/security_groups/{project_id}/{region_id}"
#define INST "/cloud/v1/instances/{project_id}/{region_id}"

static const struct sg_endpoint endpoints[] = {
    {.name = "list_security_groups", .method = "GET", .path = SG, .flags = SG_EP_READ,
     .items = "results", .doc = "List security groups (every page; pass limit/offset for one page)"},
    {.name = "get_security_group", .method = "GET", .path = SG "/{group_id}", .flags = SG_EP_READ,
     .doc = "Get a security group with its rules"},
    {.name = "create_security_group", .method = "POST", .path = SG2,
     .flags = SG_EP_BODY | SG_EP_CREATE, .async = "tasks", .match_read = "list_security_groups",
     .match_items = "results", .match_skip = "tags", .doc = "Create a security group (v2, async: tasks)"},
    {.name = "update_security_group", .method = "PATCH", .path = SG2 "/{group_id}",
     .flags = SG_EP_BODY, .async = "tasks",
     .doc = "Update name/description/tags, or replace the whole rule list (v2, async: tasks)"},
    {.name = "delete_security_group", .method = "DELETE", .path = SG "/{group_id}",
     .doc = "Delete a security group and its rules (sync, 204)"},
    {.name = "copy_security_group", .method = "POST", .path = SG "/{group_id}/copy",
     .flags = SG_EP_BODY | SG_EP_CREATE, .body_key = "name",
     .doc = "Deep-copy a security group under a new name"},
    {.name = "revert_security_group_to_default", .method = "POST", .path = SG "/{group_id}/revert",
     .doc = "Revert a security group to the default rules"},
    {.name = "list_security_group_instances", .method = "GET", .path = SG "/{group_id}/instances",
     .flags = SG_EP_READ, .doc = "List the instances a security group is assigned to"},
    {.name = "create_security_group_rule", .method = "POST", .path = SG2 "/{group_id}/rules",
     .flags = SG_EP_BODY | SG_EP_CREATE, .async = "tasks", .match_read = "get_security_group",
     .match_items = "security_group_rules",
     /* left out, these read back null and mean any / all (§4.10); ethertype is not listed: left
      * out it reads back "IPv4" */
     .match_absent = "protocol,port_range_min,port_range_max,remote_ip_prefix,remote_group_id",
     .doc = "Add a rule (v2, async: tasks)"},
    {.name = "delete_security_group_rule", .method = "DELETE",
     .path = SG2 "/{group_id}/rules/{rule_id}", .async = "tasks",
     .doc = "Delete a rule (v2, async: tasks)"},
    {.name = "list_instances", .method = "GET", .path = INST, .flags = SG_EP_READ,
     .doc = "List instances"},
    {.name = "get_instance", .method = "GET", .path = INST "/{instance_id}", .flags = SG_EP_READ,
     .doc = "Get an instance"},
    {.name = "assign_security_group", .method = "POST", .path = INST "/{instance_id}/addsecuritygroup",
     .flags = SG_EP_BODY, .body_key = "name",
     .doc = "Assign a security group to an instance, by group NAME (204)"},
    {.name = "unassign_security_group", .method = "POST", .path = INST "/{instance_id}/delsecuritygroup",
     .flags = SG_EP_BODY, .body_key = "name",
     .doc = "Unassign a security group from an instance, by group NAME (204)"},
    {.name = "list_instance_security_groups", .method = "GET",
     .path = INST "/{instance_id}/securitygroups", .flags = SG_EP_READ,
     .doc = "List the security groups of an instance"},
    {.name = "get_task", .method = "GET", .path = "/cloud/v1/tasks/{task_id}", .flags = SG_EP_READ,
     .doc = "Get a task (NEW, RUNNING, FINISHED or ERROR)"},
    {.name = "list_tasks", .method = "GET", .path = "/cloud/v1/tasks", .flags = SG_EP_READ,
     .doc = "List tasks (one page: pass limit/offset, state, task_type, ...)"},
    {.name = "list_active_tasks", .method = "GET", .path = "/cloud/v1/tasks/{project_id}/{region_id}/active",
     .flags = SG_EP_READ, .items = "results",
     .doc = "List the active tasks of the project and region (every page; pass limit/offset for one page)"},
    {.name = "acknowledge_task", .method = "POST", .path = "/cloud/v1/tasks/{task_id}/acknowledge",
     .doc = "Acknowledge one task"},
    {.name = "acknowledge_all_tasks", .method = "POST",
     .path = "/cloud/v1/tasks/acknowledge_all?project_id={project_id}&region_id={region_id}",
     .doc = "Acknowledge every task of the project and region (204)"},
    {0}};

static const struct sg_credential credentials[] = {
    {"api_key", "GCORE_API_KEY", 1, 1},
    {"project_id", "GCORE_CLOUD_PROJECT_ID", 0, 1},
    {"region_id", "GCORE_CLOUD_REGION_ID", 0, 1},
    {0}};

static const char *const scope[] = {"project_id", "region_id", NULL};
static const char *const redact[] = {"authorization", NULL};

/* DOC-ERR: {exception_class, message, request_id, invalid_fields?}. */
static const struct sg_kv errors[] = {
    {"code", "exception_class,code"}, {"message", "message,detail,errors"},
    {"request_id", "request_id"}, {"request_id_header", "x-request-id"}, {0, 0}};

/* §4.1: offset paging; always send limit (the documented defaults disagree; at most 1000). */
static const struct sg_kv paging[] = {
    {"style", "offset"}, {"limit", "limit"}, {"offset", "offset"}, {"total", "count"},
    {"size", "1000"}, {"max", "1000"}, {0, 0}};

/* §5: every task id is polled; NEW and RUNNING are both pending. */
static const struct sg_kv async[] = {
    {"tasks.list", "tasks"}, {"tasks.get", "get_task"}, {"tasks.state", "state"},
    {"tasks.pending", "NEW,RUNNING"}, {"tasks.success", "FINISHED"}, {"tasks.failure", "ERROR"},
    {"tasks.reason", "error"}, {"tasks.result", "created_resources"},
    /* the project's running tasks, each echoing its request: a create whose response was lost
     * is found there until its task finishes (sg.connect) */
    {"tasks.active", "list_active_tasks"}, {"tasks.data", "data"}, {0, 0}};

static int auth(lua_State *L) {
  return sg_provider_header_auth(L, "Authorization", "APIKey ", "api_key");
}

static const struct sg_provider gcore = {
    .name = "gcore",
    .base_url_env = "SGRUN_GCORE_URL",
    .default_base_url = "https://api.gcore.com",
    .scope = scope,
    .credentials = credentials,
    .endpoints = endpoints,
    .auth = auth,
    .redact = redact,
    .errors = errors,
    .paging = paging,
    .async = async,
};

int luaopen__sg_gcore(lua_State *L) {
  return sg_provider_push(L, &gcore);
}
