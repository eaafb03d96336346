#!/usr/bin/python3
"""Carries the security-group part of a vendor's OpenAPI document into a JSON Schema file.

usage: carry_openapi.py <provider> <openapi.json> <source description> [--add-to-enum PROPERTY VALUE WHY]...
         > <provider>.schema.json

The output keeps the vendor's schemas as they are, with only what JSON Schema 2020-12 needs
changed: `#/components/schemas/X` becomes `#/$defs/X`, OpenAPI 3.0 `nullable: true` becomes
`anyOf [..., {"type": "null"}]`, 3.0's boolean exclusiveMinimum/exclusiveMaximum (always false
in these documents) are dropped, and a reference to a schema the extract does not hold becomes
{"x-missing-in-extract": name} (accepts anything: the vendor's text is not here to judge by).
Routes (method, path template, query parameters, request and response schemas) go in
"x-sgrun-routes" for tests/schemas/validate_traffic.py; "query" maps every query parameter the
operation declares to {"required", "schema"}, so a name it does not list is one the vendor does
not know. --add-to-enum adds a value a newer
revision of the vendor's document has to the enum of every property of that name, and records why
in "x-sgrun-additions". Run by hand when a reference changes (docs/fidelity.md has the commands).
"""
import json
import sys


KNOWN = set()


def convert(node):
    if isinstance(node, list):
        return [convert(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if k == "$ref" and isinstance(v, str):
            name = v.replace("#/components/schemas/", "")
            if name not in KNOWN:
                return {"x-missing-in-extract": name}
            out[k] = "#/$defs/" + name
        elif k in ("exclusiveMinimum", "exclusiveMaximum") and isinstance(v, bool):
            continue
        elif k == "nullable":
            continue
        else:
            out[k] = convert(v)
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


def json_schema(content):
    media = (content or {}).get("application/json")
    return convert(media["schema"]) if media and "schema" in media else None


def query_parameters(op):
    out = {}
    for p in op.get("parameters", []):
        # a shared parameter ($ref) would be a query name this carry could not see, and the
        # validator would then refuse it as unknown: say so instead of guessing
        if "$ref" in p:
            sys.exit("carry_openapi: %s: parameter %s is a $ref; resolve it here first"
                     % (op.get("operationId"), p["$ref"]))
        if p.get("in") == "query":
            out[p["name"]] = {"required": bool(p.get("required")), "schema": convert(p.get("schema", {}))}
    return out


def add_to_enum(node, prop, value):
    if isinstance(node, list):
        for x in node:
            add_to_enum(x, prop, value)
    elif isinstance(node, dict):
        for k, v in node.items():
            if k == prop and isinstance(v, dict) and isinstance(v.get("enum"), list):
                if value not in v["enum"]:
                    v["enum"].append(value)
            add_to_enum(v, prop, value)


def main():
    provider, path, source = sys.argv[1], sys.argv[2], sys.argv[3]
    additions = []
    rest = sys.argv[4:]
    while rest:
        if rest[0] != "--add-to-enum" or len(rest) < 4:
            sys.exit("usage: see the header of " + sys.argv[0])
        additions.append({"property": rest[1], "value": rest[2], "why": rest[3]})
        rest = rest[4:]
    with open(path) as f:
        doc = json.load(f)
    schemas = doc.get("components", {}).get("schemas") or doc.get("schemas") or {}
    KNOWN.update(schemas)
    routes = []
    for template, ops in doc["paths"].items():
        for method, op in ops.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            body = op.get("requestBody") or {}
            responses = {}
            for status, resp in op["responses"].items():
                schema = json_schema((resp or {}).get("content"))
                if schema is not None:
                    responses[status] = schema
            routes.append({"method": method.upper(), "path": template,
                           "operation": op.get("operationId"),
                           "query": query_parameters(op),
                           "request": json_schema(body.get("content")),
                           "request_required": bool(body.get("required")),
                           "responses": responses})
    out = {"$schema": "https://json-schema.org/draft/2020-12/schema",
           "title": provider + " security-group API (vendor schema)",
           "x-source": source,
           "$defs": {k: convert(v) for k, v in schemas.items()},
           "x-sgrun-routes": routes}
    for a in additions:
        add_to_enum(out, a["property"], a["value"])
    if additions:
        out["x-sgrun-additions"] = additions
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


main()
