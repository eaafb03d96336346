#!/usr/bin/python3
"""The formats the vendors' schemas name are judged (jsonschema checks none by default): a body
the vendor would refuse for a malformed uuid, network or timestamp must fail validation here. A
query string is judged against the parameters its operation declares: names, types, enums,
bounds, patterns, a JSON value's content schema, repeats and required names.

usage: test_schemalib.py <schemas dir>
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import schemalib  # noqa: E402


def main():
    providers = schemalib.load_all(sys.argv[1])
    gcore = providers["gcore"]
    add_rule = gcore.route("POST", "/cloud/v2/security_groups/1/76/00000000-0000-4000-8000-000000000000/rules")
    failures = []

    def expect(provider, schema, body, refused):
        errors = provider.errors(schema, body)
        if bool(errors) != refused:
            failures.append("%s: expected %s, got %s" % (body, "refused" if refused else "valid", errors))

    req = add_rule["request"]
    expect(gcore, req, {"direction": "ingress"}, False)
    expect(gcore, req, {"direction": "ingress", "remote_group_id": "not-a-uuid"}, True)
    expect(gcore, req, {"direction": "ingress", "remote_group_id": "00000000-0000-1000-8000-000000000000"}, True)
    expect(gcore, req, {"direction": "ingress", "remote_group_id": "6d3c3c7e-8a43-4a53-8f40-1d6e2c9e0b11"}, False)
    expect(gcore, req, {"direction": "ingress", "remote_ip_prefix": "10.0.0.0/8"}, False)
    expect(gcore, req, {"direction": "ingress", "remote_ip_prefix": "192.0.2.1"}, False)
    expect(gcore, req, {"direction": "ingress", "remote_ip_prefix": "10.0.0.1/8"}, True)
    expect(gcore, req, {"direction": "ingress", "remote_ip_prefix": "nonsense"}, True)
    stamp = {"type": "string", "format": "date-time"}
    expect(gcore, stamp, "2026-12-02T17:00:00Z", False)
    expect(gcore, stamp, "2026-12-02T17:00:00.123+00:00", False)
    expect(gcore, stamp, "yesterday", True)

    # query strings as on the wire, against the parameters each operation declares
    def expect_query(provider, method, path, raw, refused):
        errors = provider.query_errors(provider.route(method, path)["query"], raw)
        if bool(errors) != refused:
            failures.append("%s %s?%s: expected %s, got %s" % (method, path, raw,
                                                              "refused" if refused else "valid", errors))

    exoscale = providers["exoscale"]
    expect_query(exoscale, "GET", "/security-group", "", False)
    expect_query(exoscale, "GET", "/security-group", "visibility=private", False)
    expect_query(exoscale, "GET", "/security-group", "visibility=all", True)
    expect_query(exoscale, "GET", "/security-group", "visibility=private&visibility=public", True)
    expect_query(exoscale, "GET", "/security-group/00000000-0000-4000-8000-000000000000", "visibility=private", True)
    groups = "/cloud/v1/securitygroups/1/76"
    expect_query(gcore, "GET", groups, "limit=1000&offset=0&name=web", False)
    expect_query(gcore, "GET", groups, "limit=0", True)
    expect_query(gcore, "GET", groups, "limit=1001", True)
    expect_query(gcore, "GET", groups, "limit=ten", True)
    expect_query(gcore, "GET", groups, "offset=-1", True)
    expect_query(gcore, "GET", groups, "page=2", True)
    expect_query(gcore, "GET", groups, "tag_key=env&tag_key=tier", False)
    expect_query(gcore, "GET", groups, "tag_key=a%3Db", True)
    expect_query(gcore, "GET", groups, "tag_key_value=%7B%22env%22%3A%22prod%22%7D", False)
    expect_query(gcore, "GET", groups, "tag_key_value=prod", True)
    expect_query(gcore, "GET", groups, "tag_key_value=%7B%22a%20b%22%3A%22prod%22%7D", True)
    expect_query(gcore, "GET", "/cloud/v1/tasks", "state=ERROR&state=FINISHED&is_acknowledged=false", False)
    expect_query(gcore, "GET", "/cloud/v1/tasks", "state=BOGUS", True)
    expect_query(gcore, "GET", "/cloud/v1/tasks", "is_acknowledged=maybe", True)
    expect_query(gcore, "GET", "/cloud/v1/tasks", "from_timestamp=yesterday", True)
    expect_query(gcore, "POST", "/cloud/v1/tasks/acknowledge_all", "project_id=1&region_id=76", False)
    expect_query(gcore, "POST", "/cloud/v1/tasks/acknowledge_all", "project_id=one", True)
    expect_query(gcore, "GET", groups + "/00000000-0000-4000-8000-000000000000/metadata_item", "", True)
    for f in failures:
        print("FAIL " + f)
    print("test_schemalib: %d failures" % len(failures))
    return 1 if failures else 0


sys.exit(main())
