"""Shared by validate_traffic.py and fuzz_bodies.py: loads tests/schemas/<provider>.schema.json
and validates bodies and query strings against a route's schemas.

"integer" means a JSON number written as an integer: Python's json keeps 8080.0 a float, and
the emulator refuses it where the schemas say integer (docs/fidelity.md explains the choice;
jsonschema's default would take 8080.0 as an integer).
"""
import ipaddress
import json
import os
import re
import uuid
from urllib.parse import parse_qsl

from jsonschema import Draft202012Validator, FormatChecker, RefResolver, validators

Strict = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, v: isinstance(v, int) and not isinstance(v, bool)))

# The formats the vendors' schemas use, judged as the vendors' servers judge them: jsonschema
# checks none of these by default. ipvany* are pydantic's (Gcore): a network with host bits set
# is refused, a bare address is a network of one.
FORMATS = FormatChecker(formats=())
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})?$")


def _uuid(v, version=None):
    if not isinstance(v, str):
        return True
    try:
        u = uuid.UUID(v)
    except ValueError:
        return False
    return version is None or u.version == version


def _ip(v, kind):
    if not isinstance(v, str):
        return True
    try:
        kind(v)
    except ValueError:
        return False
    return True


FORMATS.checks("uuid")(lambda v: _uuid(v))
FORMATS.checks("uuid4")(lambda v: _uuid(v, 4))
FORMATS.checks("date-time")(lambda v: not isinstance(v, str) or bool(RFC3339.match(v)))
FORMATS.checks("ipv4")(lambda v: _ip(v, ipaddress.IPv4Address))
FORMATS.checks("ipvanyaddress")(lambda v: _ip(v, ipaddress.ip_address))
FORMATS.checks("ipvanynetwork")(lambda v: _ip(v, ipaddress.ip_network))
FORMATS.checks("int64")(lambda v: not isinstance(v, int) or -2**63 <= v < 2**63)


class Provider:
    def __init__(self, path):
        with open(path) as f:
            self.root = json.load(f)
        self.name = os.path.basename(path).split(".")[0]
        self.resolver = RefResolver.from_schema(self.root)
        self.routes = []
        for r in self.root.get("x-sgrun-routes", []):
            pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(r["path"])) + "$"
            self.routes.append((r["method"], re.compile(pattern), r))

    def route(self, method, path):
        for m, rx, r in self.routes:
            if m == method and rx.match(path):
                return r
        return None

    def errors(self, schema, value):
        """The violations of value against schema, as (json pointer, message) pairs."""
        v = Strict(schema, resolver=self.resolver, format_checker=FORMATS)
        return [("/" + "/".join(str(p) for p in e.absolute_path), e.message)
                for e in v.iter_errors(value)]


    def _resolve(self, schema):
        while isinstance(schema, dict) and "$ref" in schema:
            schema = self.resolver.resolve(schema["$ref"])[1]
        return schema

    def _types(self, schema):
        """The JSON types a schema allows, through $ref and anyOf/oneOf (an enum alone: its values')."""
        s = self._resolve(schema)
        t = s.get("type")
        if t is not None:
            return {t} if isinstance(t, str) else set(t)
        out = set()
        for branch in s.get("anyOf", []) + s.get("oneOf", []):
            out |= self._types(branch)
        if not out and "enum" in s:
            out = {"string" if isinstance(v, str) else "integer" if isinstance(v, int) else "other"
                   for v in s["enum"]}
        return out

    def _typed(self, schema, text):
        """A query value as the server's parser reads it: every value arrives as text, and the
        schema's type says what it must parse as. Text that does not parse stays text, so the
        schema then refuses it by type."""
        types = self._types(schema)
        if "integer" in types and re.fullmatch(r"[+-]?[0-9]+", text):
            return int(text)
        if "number" in types and re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", text):
            return float(text)
        if "boolean" in types and text in ("true", "false"):
            return text == "true"
        return text

    def query_errors(self, params, raw):
        """The violations of a raw query string (as on the wire, without "?") against a route's
        query parameters ({name: {required, schema}}), as (name, message) pairs: a name the
        operation does not declare, a value its schema refuses, a single-valued name given twice
        (an array parameter takes each occurrence as an item: OpenAPI's form style, exploded), a
        required name missing."""
        values = {}
        for name, value in parse_qsl(raw, keep_blank_values=True):
            values.setdefault(name, []).append(value)
        out = []
        for name, got in values.items():
            p = params.get(name)
            if p is None:
                out.append((name, "not a query parameter of this operation (it takes %s)"
                            % (", ".join(sorted(params)) or "none")))
                continue
            schema = p["schema"]
            if "array" in self._types(schema):
                items = self._resolve(schema).get("items", {})
                value = [self._typed(items, v) for v in got]
            elif len(got) > 1:
                out.append((name, "given %d times; it takes one value" % len(got)))
                continue
            else:
                value = self._typed(schema, got[0])
            errors = self.errors(schema, value)
            resolved = self._resolve(schema)
            # a JSON document in a query value (Gcore's tag_key_value): jsonschema only annotates
            # contentSchema, the vendor's server parses the value and validates it
            if not errors and resolved.get("contentMediaType") == "application/json":
                try:
                    errors = self.errors(resolved.get("contentSchema", {}), json.loads(value))
                except ValueError:
                    errors = [("/", "%r is not JSON" % value)]
            out.extend((name + (at if at != "/" else ""), msg) for at, msg in errors)
        out.extend((name, "required, missing") for name, p in sorted(params.items())
                   if p["required"] and name not in values)
        return out


def load_all(schemas_dir):
    out = {}
    for name in sorted(os.listdir(schemas_dir)):
        if name.endswith(".schema.json"):
            p = Provider(os.path.join(schemas_dir, name))
            out[p.name] = p
    return out
