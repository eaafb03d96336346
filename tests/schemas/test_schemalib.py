#!/usr/bin/python3
"""The formats the vendors' schemas name are judged (jsonschema checks none by default): a body
the vendor would refuse for a malformed uuid, network or timestamp must fail validation here.

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
    for f in failures:
        print("FAIL " + f)
    print("test_schemalib: %d failures" % len(failures))
    return 1 if failures else 0


sys.exit(main())
