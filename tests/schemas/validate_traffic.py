#!/usr/bin/python3
"""Validates the emulator traffic the suite recorded against the providers' schemas.

usage: validate_traffic.py <schemas dir> <traffic dir>

<traffic dir> holds one <test>.jsonl per test run against the emulator (SGRUN_SIM_TRAFFIC): each
line an answered request with provider, method, route (the path after the provider's prefix),
status, request_body and response_body. A request the emulator accepted (2xx) must validate
against its route's request schema, and its query string against the query parameters the
route's operation declares (where the schema carries them: the ones taken from a vendor's OpenAPI
document); every response against the schema of its status (or the route's "default" for an
error). Violations name the test, the request and the field; any fails
the run. Routes without a schema are counted and listed, not failed. The responses of a
test_legacy_* test are not judged: it loads data in shapes older API versions gave, which today's
response schemas refuse on purpose; its requests are judged like every other.
"""
import glob
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import schemalib  # noqa: E402


def main():
    schemas_dir, traffic_dir = sys.argv[1], sys.argv[2]
    providers = schemalib.load_all(schemas_dir)
    files = sorted(glob.glob(os.path.join(traffic_dir, "*.jsonl")))
    if not files:
        print("validate_traffic: no traffic recorded in %s (did the sim tests run?)" % traffic_dir)
        return 1
    n_req = n_query = n_resp = n_entries = 0
    unmapped = {}
    violations = []
    for path in files:
        test = os.path.basename(path)[:-len(".jsonl")]
        legacy = test.startswith("test_legacy_")
        with open(path) as f:
            for line in f:
                e = json.loads(line)
                n_entries += 1
                prov = e.get("provider")
                if prov not in providers or e.get("status", 0) == 0:
                    continue
                provider = providers[prov]
                method, route, status = e["method"], e.get("route") or "", e["status"]
                found = provider.route(method, route)
                what = "%s: %s %s %s (request %s, status %s)" % (test, prov, method, e["path"],
                                                                  e["seq"], status)
                if not found:
                    key = "%s %s %s" % (prov, method, re.sub(r"/[0-9a-f-]{8,}|/\d+", "/{id}", route))
                    unmapped[key] = unmapped.get(key, 0) + 1
                    continue

                def check(schema, text, part):
                    try:
                        body = json.loads(text)
                    except ValueError:
                        violations.append("%s: %s is not JSON" % (what, part))
                        return
                    for at, msg in provider.errors(schema, body):
                        violations.append("%s: %s at %s: %s" % (what, part, at, msg))

                if 200 <= status < 300 and found.get("request") is not None:
                    if e.get("request_body"):
                        n_req += 1
                        check(found["request"], e["request_body"], "request body")
                    elif found.get("request_required"):
                        violations.append("%s: request body missing" % what)
                if 200 <= status < 300 and "query" in found:
                    n_query += 1
                    for name, msg in provider.query_errors(found["query"], e.get("query") or ""):
                        violations.append("%s: query parameter %s: %s" % (what, name, msg))
                responses = found.get("responses", {})
                schema = responses.get(str(status))
                if schema is None and status >= 400:
                    schema = responses.get("default")
                if schema is not None and e.get("response_body") and not legacy:
                    n_resp += 1
                    check(schema, e["response_body"], "response body")
    print("validate_traffic: %d tests, %d requests recorded, %d request bodies, %d query strings and %d "
          "response bodies validated, %d violations" % (len(files), n_entries, n_req, n_query, n_resp,
                                                          len(violations)))
    if unmapped:
        print("routes without a schema (not validated):")
        for k in sorted(unmapped):
            print("  %-70s %d" % (k, unmapped[k]))
    for v in violations[:200]:
        print("VIOLATION " + v)
    if len(violations) > 200:
        print("... and %d more" % (len(violations) - 200))
    return 1 if violations else 0


sys.exit(main())
