#!/usr/bin/python3
"""Validates one request body against its route's schema, and optionally each element of a list
in it against a named definition.

usage: check_body.py <schemas dir> <provider> <METHOD> <route path> <body file> [<list field> <$defs name>]

Prints what was checked; exits 1 naming every violation (JSON pointer and message).
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import schemalib  # noqa: E402


def main():
    schemas_dir, provider, method, path, body_file = sys.argv[1:6]
    p = schemalib.load_all(schemas_dir)[provider]
    route = p.route(method, path)
    if route is None or route.get("request") is None:
        print("check_body: no request schema for %s %s %s" % (provider, method, path))
        return 1
    with open(body_file) as f:
        body = json.load(f)
    violations = [("body", at, msg) for at, msg in p.errors(route["request"], body)]
    checked = "the body (%s)" % route.get("operation", path)
    if len(sys.argv) > 7:
        field, name = sys.argv[6], sys.argv[7]
        items = body.get(field) if isinstance(body, dict) else None
        if not isinstance(items, list):
            violations.append(("body", "/" + field, "not a list"))
            items = []
        for i, item in enumerate(items):
            for at, msg in p.errors({"$ref": "#/$defs/" + name}, item):
                violations.append(("%s[%d]" % (field, i), at, msg))
        checked += " and %d %s items against %s" % (len(items), field, name)
    print("check_body: %s %s: checked %s, %d violations" % (provider, method, checked, len(violations)))
    for where, at, msg in violations:
        print("VIOLATION %s at %s: %s" % (where, at, msg))
    return 1 if violations else 0


sys.exit(main())
