---@meta
-- luacheck: ignore (stub bodies are empty by design)
-- LuaLS annotations for the connection objects of sg.connect: one class per provider, one
-- method per endpoint of its binding (bindings/<provider>.c). Generated from those tables;
-- tests/lua/test_connect.lua checks that it lists every endpoint. Requiring it does nothing.

---@class sg.Connection
---@field provider string
---@field base_url string
local Connection = {}

---Waits for the async work a method started: polls with backoff until done, failed (raises
---an sg.Error) or the deadline passes (raises with code "timeout").
---@async
---@param x any the value an async method returned (or an operation/task id)
---@param opts? {timeout?: number, interval?: number, max_interval?: number, factor?: number, max_errors?: integer}
---@return any final, any created_item
function Connection:wait(x, opts) end

---@class sg.conn.barrack : sg.Connection
local BarrackConnection = {}

---List instances [INFERRED path].
---`GET /instances/`
---@async
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function BarrackConnection:list_instances(query) end

---Get instance details, with its security rules [INFERRED path].
---`GET /instances/{instance_id}/`
---@async
---@param instance_id string|integer
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function BarrackConnection:get_instance(instance_id, query) end

---Add a security rule to a legacy-tier instance (async: activation).
---`POST /instances/{instance_id}/security-rules/` (async: activation) (not idempotent: never blindly re-sent)
---@async
---@param instance_id string|integer
---@param body table the JSON request body
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function BarrackConnection:add_instance_security_rule(instance_id, body, query) end

---Remove an instance security rule [INFERRED path].
---`DELETE /instances/{instance_id}/security-rules/{rule_id}/`
---@async
---@param instance_id string|integer
---@param rule_id string|integer
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function BarrackConnection:remove_instance_security_rule(instance_id, rule_id, query) end

---Firewalls attached to an instance [INFERRED path].
---`GET /instances/{instance_id}/firewalls/`
---@async
---@param instance_id string|integer
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function BarrackConnection:get_instance_firewalls(instance_id, query) end

---List firewalls (every page) [INFERRED path].
---`GET /firewalls/`
---@async
---@param query? table query parameters (paging ones fetch a single page)
---@return table response the decoded JSON response, envelope included
function BarrackConnection:list_firewalls(query) end

---Get firewall details, rules and attachments [INFERRED path].
---`GET /firewalls/{firewall_id}/`
---@async
---@param firewall_id string|integer
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function BarrackConnection:get_firewall(firewall_id, query) end

---Create a firewall {name, description, region} [INFERRED path].
---`POST /firewalls/` (not idempotent: never blindly re-sent)
---@async
---@param body table the JSON request body
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function BarrackConnection:create_firewall(body, query) end

---Delete a firewall (detach it first) [INFERRED path].
---`DELETE /firewalls/{firewall_id}/`
---@async
---@param firewall_id string|integer
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function BarrackConnection:delete_firewall(firewall_id, query) end

---Add a firewall rule (async: activation) [INFERRED path].
---`POST /firewalls/{firewall_id}/firewall-rules/` (async: activation) (not idempotent: never blindly re-sent)
---@async
---@param firewall_id string|integer
---@param body table the JSON request body
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function BarrackConnection:add_firewall_rule(firewall_id, body, query) end

---Remove a firewall rule [INFERRED path].
---`DELETE /firewalls/{firewall_id}/firewall-rules/{rule_id}/`
---@async
---@param firewall_id string|integer
---@param rule_id string|integer
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function BarrackConnection:remove_firewall_rule(firewall_id, rule_id, query) end

---Set the instances a firewall is attached to (replaces the list; async: activation).
---`POST /firewalls/{firewall_id}/update-attachments/` (async: activation)
---@async
---@param firewall_id string|integer
---@param body table|string|integer|(string|integer)[] a bare value is sent as {instance_ids = value}
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function BarrackConnection:attach_firewall_to_instances(firewall_id, body, query) end

---Protocols a rule may use [INFERRED path].
---`GET /firewalls/protocols/`
---@async
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function BarrackConnection:get_supported_protocols(query) end

---Instances a firewall can be attached to (query region) [INFERRED path].
---`GET /firewalls/available-instances/`
---@async
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function BarrackConnection:list_instances_available_for_firewall(query) end

---@class sg.conn.exoscale : sg.Connection
local ExoscaleConnection = {}

---List zones and their API endpoints.
---`GET /zone`
---@async
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function ExoscaleConnection:list_zones(query) end

---List security groups (query visibility = private|public).
---`GET /security-group`
---@async
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function ExoscaleConnection:list_security_groups(query) end

---Get a security group with its rules and external sources.
---`GET /security-group/{id}`
---@async
---@param id string|integer
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function ExoscaleConnection:get_security_group(id, query) end

---Create a security group {name, description} (async: operation).
---`POST /security-group` (async: operation) (not idempotent: never blindly re-sent)
---@async
---@param body table the JSON request body
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function ExoscaleConnection:create_security_group(body, query) end

---Delete a security group (async: operation).
---`DELETE /security-group/{id}` (async: operation)
---@async
---@param id string|integer
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function ExoscaleConnection:delete_security_group(id, query) end

---Add a rule (async: operation; wait also returns the new rule).
---`POST /security-group/{id}/rules` (async: operation) (not idempotent: never blindly re-sent)
---@async
---@param id string|integer
---@param body table the JSON request body
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function ExoscaleConnection:add_rule_to_security_group(id, body, query) end

---Delete a rule (async: operation).
---`DELETE /security-group/{id}/rules/{rule_id}` (async: operation)
---@async
---@param id string|integer
---@param rule_id string|integer
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function ExoscaleConnection:delete_rule_from_security_group(id, rule_id, query) end

---Add an external source CIDR (async: operation).
---`PUT /security-group/{id}:add-source` (async: operation)
---@async
---@param id string|integer
---@param body table|string|integer|(string|integer)[] a bare value is sent as {cidr = value}
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function ExoscaleConnection:add_external_source_to_security_group(id, body, query) end

---Remove an external source CIDR (async: operation).
---`PUT /security-group/{id}:remove-source` (async: operation)
---@async
---@param id string|integer
---@param body table|string|integer|(string|integer)[] a bare value is sent as {cidr = value}
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function ExoscaleConnection:remove_external_source_from_security_group(id, body, query) end

---Attach an instance (id or {instance = {id = ...}}) (async: operation).
---`PUT /security-group/{id}:attach` (async: operation)
---@async
---@param id string|integer
---@param body table|string|integer|(string|integer)[] a bare value is sent as {instance.id = value}
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function ExoscaleConnection:attach_instance_to_security_group(id, body, query) end

---Detach an instance (async: operation).
---`PUT /security-group/{id}:detach` (async: operation)
---@async
---@param id string|integer
---@param body table|string|integer|(string|integer)[] a bare value is sent as {instance.id = value}
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function ExoscaleConnection:detach_instance_from_security_group(id, body, query) end

---Get an async operation.
---`GET /operation/{id}`
---@async
---@param id string|integer
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function ExoscaleConnection:get_operation(id, query) end

---List the instances of the zone.
---`GET /instance`
---@async
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function ExoscaleConnection:list_instances(query) end

---Get an instance.
---`GET /instance/{id}`
---@async
---@param id string|integer
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function ExoscaleConnection:get_instance(id, query) end

---@class sg.conn.gcore : sg.Connection
local GcoreConnection = {}

---List security groups (every page; pass limit/offset for one page).
---`GET /cloud/v1/securitygroups/{project_id}/{region_id}`
---@async
---@param query? table query parameters (paging ones fetch a single page)
---@return table response the decoded JSON response, envelope included
function GcoreConnection:list_security_groups(query) end

---Get a security group with its rules.
---`GET /cloud/v1/securitygroups/{project_id}/{region_id}/{group_id}`
---@async
---@param group_id string|integer
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function GcoreConnection:get_security_group(group_id, query) end

---Create a security group (v2, async: tasks).
---`POST /cloud/v2/security_groups/{project_id}/{region_id}` (async: tasks) (not idempotent: never blindly re-sent)
---@async
---@param body table the JSON request body
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function GcoreConnection:create_security_group(body, query) end

---Update name/description/tags, or replace the whole rule list (v2, async: tasks).
---`PATCH /cloud/v2/security_groups/{project_id}/{region_id}/{group_id}` (async: tasks)
---@async
---@param group_id string|integer
---@param body table the JSON request body
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function GcoreConnection:update_security_group(group_id, body, query) end

---Delete a security group and its rules (sync, 204).
---`DELETE /cloud/v1/securitygroups/{project_id}/{region_id}/{group_id}`
---@async
---@param group_id string|integer
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function GcoreConnection:delete_security_group(group_id, query) end

---Deep-copy a security group under a new name.
---`POST /cloud/v1/securitygroups/{project_id}/{region_id}/{group_id}/copy` (not idempotent: never blindly re-sent)
---@async
---@param group_id string|integer
---@param body table|string|integer|(string|integer)[] a bare value is sent as {name = value}
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function GcoreConnection:copy_security_group(group_id, body, query) end

---Revert a security group to the default rules.
---`POST /cloud/v1/securitygroups/{project_id}/{region_id}/{group_id}/revert`
---@async
---@param group_id string|integer
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function GcoreConnection:revert_security_group_to_default(group_id, query) end

---List the instances a security group is assigned to.
---`GET /cloud/v1/securitygroups/{project_id}/{region_id}/{group_id}/instances`
---@async
---@param group_id string|integer
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function GcoreConnection:list_security_group_instances(group_id, query) end

---Add a rule (v2, async: tasks).
---`POST /cloud/v2/security_groups/{project_id}/{region_id}/{group_id}/rules` (async: tasks) (not idempotent: never blindly re-sent)
---@async
---@param group_id string|integer
---@param body table the JSON request body
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function GcoreConnection:create_security_group_rule(group_id, body, query) end

---Delete a rule (v2, async: tasks).
---`DELETE /cloud/v2/security_groups/{project_id}/{region_id}/{group_id}/rules/{rule_id}` (async: tasks)
---@async
---@param group_id string|integer
---@param rule_id string|integer
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function GcoreConnection:delete_security_group_rule(group_id, rule_id, query) end

---List instances.
---`GET /cloud/v1/instances/{project_id}/{region_id}`
---@async
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function GcoreConnection:list_instances(query) end

---Get an instance.
---`GET /cloud/v1/instances/{project_id}/{region_id}/{instance_id}`
---@async
---@param instance_id string|integer
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function GcoreConnection:get_instance(instance_id, query) end

---Assign a security group to an instance, by group NAME (204).
---`POST /cloud/v1/instances/{project_id}/{region_id}/{instance_id}/addsecuritygroup`
---@async
---@param instance_id string|integer
---@param body table|string|integer|(string|integer)[] a bare value is sent as {name = value}
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function GcoreConnection:assign_security_group(instance_id, body, query) end

---Unassign a security group from an instance, by group NAME (204).
---`POST /cloud/v1/instances/{project_id}/{region_id}/{instance_id}/delsecuritygroup`
---@async
---@param instance_id string|integer
---@param body table|string|integer|(string|integer)[] a bare value is sent as {name = value}
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function GcoreConnection:unassign_security_group(instance_id, body, query) end

---List the security groups of an instance.
---`GET /cloud/v1/instances/{project_id}/{region_id}/{instance_id}/securitygroups`
---@async
---@param instance_id string|integer
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function GcoreConnection:list_instance_security_groups(instance_id, query) end

---Get a task (NEW, RUNNING, FINISHED or ERROR).
---`GET /cloud/v1/tasks/{task_id}`
---@async
---@param task_id string|integer
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function GcoreConnection:get_task(task_id, query) end

---List tasks (one page: pass limit/offset, state, task_type, ...).
---`GET /cloud/v1/tasks`
---@async
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function GcoreConnection:list_tasks(query) end

---List the active tasks of the project and region (every page; pass limit/offset for one page).
---`GET /cloud/v1/tasks/{project_id}/{region_id}/active`
---@async
---@param query? table query parameters (paging ones fetch a single page)
---@return table response the decoded JSON response, envelope included
function GcoreConnection:list_active_tasks(query) end

---Acknowledge one task.
---`POST /cloud/v1/tasks/{task_id}/acknowledge`
---@async
---@param task_id string|integer
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function GcoreConnection:acknowledge_task(task_id, query) end

---Acknowledge every task of the project and region (204).
---`POST /cloud/v1/tasks/acknowledge_all?project_id={project_id}&region_id={region_id}`
---@async
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function GcoreConnection:acknowledge_all_tasks(query) end

---@class sg.conn.genesis : sg.Connection
local GenesisConnection = {}

---List security groups (every page; pass page/per_page for one page).
---`GET /security-groups`
---@async
---@param query? table query parameters (paging ones fetch a single page)
---@return table response the decoded JSON response, envelope included
function GenesisConnection:list_security_groups(query) end

---Create a security group {name, description, region, rules} (async: status).
---`POST /security-groups` (async: status) (not idempotent: never blindly re-sent)
---@async
---@param body table the JSON request body
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function GenesisConnection:create_security_group(body, query) end

---Get a security group.
---`GET /security-groups/{security_group_id}`
---@async
---@param security_group_id string|integer
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function GenesisConnection:get_security_group(security_group_id, query) end

---Update a security group; rules is the full desired list (async: status).
---`PATCH /security-groups/{security_group_id}` (async: status)
---@async
---@param security_group_id string|integer
---@param body table the JSON request body
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function GenesisConnection:update_security_group(security_group_id, body, query) end

---Delete a security group (204; async: gone when it reads 404).
---`DELETE /security-groups/{security_group_id}` (async: gone)
---@async
---@param security_group_id string|integer
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function GenesisConnection:delete_security_group(security_group_id, query) end

---List instances (every page).
---`GET /instances`
---@async
---@param query? table query parameters (paging ones fetch a single page)
---@return table response the decoded JSON response, envelope included
function GenesisConnection:list_instances(query) end

---Get an instance.
---`GET /instances/{instance_id}`
---@async
---@param instance_id string|integer
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function GenesisConnection:get_instance(instance_id, query) end

---Update an instance (name, security_groups list/attach/detach).
---`PATCH /instances/{instance_id}`
---@async
---@param instance_id string|integer
---@param body table the JSON request body
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function GenesisConnection:update_instance(instance_id, body, query) end

---Attach one security group to an instance.
---`PATCH /instances/{instance_id}`
---@async
---@param instance_id string|integer
---@param body table|string|integer|(string|integer)[] a bare value is sent as {security_groups.attach = value}
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function GenesisConnection:attach_security_group(instance_id, body, query) end

---Detach one security group from an instance.
---`PATCH /instances/{instance_id}`
---@async
---@param instance_id string|integer
---@param body table|string|integer|(string|integer)[] a bare value is sent as {security_groups.detach = value}
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function GenesisConnection:detach_security_group(instance_id, body, query) end

---@class sg.conn.hostup : sg.Connection
local HostupConnection = {}

---List a VM's firewall rules (data = [{pos, type, action, proto, dport, source, ...}]).
---`GET /vm/{vmid}/firewall`
---@async
---@param vmid string|integer
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function HostupConnection:list_firewall_rules(vmid, query) end

---Add a rule {type, action, proto, dport, source, comment, enable}; it lands at pos 0.
---`POST /vm/{vmid}/firewall` (not idempotent: never blindly re-sent)
---@async
---@param vmid string|integer
---@param body table the JSON request body
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function HostupConnection:add_firewall_rule(vmid, body, query) end

---Replace the rule at a position (all 7 fields).
---`PUT /vm/{vmid}/firewall?pos={pos}` (not idempotent: never blindly re-sent)
---@async
---@param vmid string|integer
---@param pos string|integer
---@param body table the JSON request body
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function HostupConnection:update_firewall_rule(vmid, pos, body, query) end

---Delete the rule at a position (later rules shift up).
---`DELETE /vm/{vmid}/firewall?pos={pos}` (not idempotent: never blindly re-sent)
---@async
---@param vmid string|integer
---@param pos string|integer
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function HostupConnection:delete_firewall_rule(vmid, pos, query) end

---Enable/disable the firewall and set the inbound policy {enable, policy_in}.
---`PUT /vm/{vmid}/firewall/options`
---@async
---@param vmid string|integer
---@param body table the JSON request body
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function HostupConnection:update_firewall_options(vmid, body, query) end

---The firewall group assigned to a VM.
---`GET /vm/{vmid}/firewall/group`
---@async
---@param vmid string|integer
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function HostupConnection:get_firewall_group_assignment(vmid, query) end

---Remove the firewall group from a VM.
---`DELETE /vm/{vmid}/firewall/group`
---@async
---@param vmid string|integer
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function HostupConnection:remove_firewall_group(vmid, query) end

---List firewall groups.
---`GET /firewall-groups`
---@async
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function HostupConnection:list_firewall_groups(query) end

---Create a firewall group {name, description, rules}.
---`POST /firewall-groups` (not idempotent: never blindly re-sent)
---@async
---@param body table the JSON request body
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function HostupConnection:create_firewall_group(body, query) end

---Replace a firewall group's name, description and rules.
---`PUT /firewall-groups/{id}`
---@async
---@param id string|integer
---@param body table the JSON request body
---@param query? table query parameters
---@return table response the decoded JSON response, envelope included
function HostupConnection:replace_firewall_group(id, body, query) end

---@param provider "barrack"|"exoscale"|"gcore"|"genesis"|"hostup"
---@param opts? table credentials by name, profile, base_url, zone, timeout, max_size, retry, transport
---@return sg.Connection
local function connect(provider, opts) end

return { connect = connect }
