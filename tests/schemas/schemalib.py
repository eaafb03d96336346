"""Shared by validate_traffic.py and fuzz_bodies.py: loads tests/schemas/<provider>.schema.json
and validates bodies against a route's schemas.

"integer" means a JSON number written as an integer: Python's json keeps 8080.0 a float, and
the emulator refuses it where the schemas say integer (docs/fidelity.md explains the choice;
jsonschema's default would take 8080.0 as an integer).
"""
import ipaddress
import json
import os
import re
import uuid

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


def load_all(schemas_dir):
    out = {}
    for name in sorted(os.listdir(schemas_dir)):
        if name.endswith(".schema.json"):
            p = Provider(os.path.join(schemas_dir, name))
            out[p.name] = p
    return out
