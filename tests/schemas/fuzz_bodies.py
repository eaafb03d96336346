#!/usr/bin/python3
"""Generates request bodies for the differential schema fuzz (tests/sim/test_schema_fuzz.lua).

usage: fuzz_bodies.py <schemas dir> <seed> <bodies per route>

For every provider's write endpoints: valid bodies (random, within what the emulator's own
inferred rules take: known regions, ports given together, unique names), and each valid body
with one field made invalid: missing, null, the wrong type (string, boolean, fractional number),
out of range, {} for [] and [] for {}, an unknown enum value, over maxLength/maxItems. Every
body is judged by the vendor's schema (schemalib: python3-jsonschema); only mutations the schema
refuses are kept, since a mutation the schema allows may still break a rule no schema states.
Output: one JSON line per body {provider, method, path, body (text), valid, what}; the path
holds placeholders ({exo_sg}, {gc_sg}, {gen_sg}, {brk_inst}, {brk_fw}, {hu_vm}) the Lua side
fills in from the emulator's seeded state.
"""
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import schemalib  # noqa: E402

CIDRS4 = ["0.0.0.0/0", "10.0.0.0/8", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.7/32"]


class Gen:
    def __init__(self, rng):
        self.rng = rng
        self.n = 0

    def uniq(self, prefix):
        self.n += 1
        return "%s-%d-%d" % (prefix, self.n, self.rng.randrange(10 ** 6))

    def ports(self):
        a = self.rng.randrange(1, 65000)
        return a, a + self.rng.randrange(0, 500)

    def cidr(self):
        return self.rng.choice(CIDRS4)

    def maybe(self, d, key, value):
        if self.rng.random() < 0.5:
            d[key] = value
        return d

    # Exoscale (exoscale.schema.json: create-security-group, add-rule-to-security-group)
    def exo_group(self):
        return self.maybe({"name": self.uniq("fz")}, "description", "fuzz group")

    def exo_rule(self):
        r = {"flow-direction": self.rng.choice(["ingress", "egress"]), "network": self.cidr()}
        if self.rng.random() < 0.8:
            a, b = self.ports()
            r.update({"protocol": self.rng.choice(["tcp", "udp"]), "start-port": a, "end-port": b})
        else:
            r.update({"protocol": "icmp", "icmp": {"type": 8, "code": 0}})
        return self.maybe(r, "description", "fuzz %d" % self.rng.randrange(10 ** 6))

    # Gcore (CreateSecurityGroupSerializerV2, UpdateSecurityGroupSerializerV2, ...RuleSerializerV2)
    def gc_rule(self):
        a, b = self.ports()
        r = {"direction": self.rng.choice(["ingress", "egress"]), "protocol": self.rng.choice(["tcp", "udp"]),
             "port_range_min": a, "port_range_max": b, "remote_ip_prefix": self.cidr()}
        self.maybe(r, "ethertype", "IPv4")
        return self.maybe(r, "description", "fuzz %d" % self.rng.randrange(10 ** 6))

    def gc_rules(self):
        return [self.gc_rule() for _ in range(self.rng.randrange(1, 4))]

    def gc_group(self):
        return self.maybe({"name": self.uniq("fz"), "rules": self.gc_rules()}, "description", "fuzz")

    def gc_update(self):
        d = {"rules": self.gc_rules()}
        self.maybe(d, "name", self.uniq("fz"))
        return self.maybe(d, "description", "fuzz")

    # Genesis (genesis.schema.json)
    def gen_rule(self):
        if self.rng.random() < 0.75:
            a, b = self.ports()
            return {"protocol": self.rng.choice(["tcp", "udp"]), "direction": self.rng.choice(["ingress", "egress"]),
                    "port_range_min": a, "port_range_max": b}
        return {"protocol": self.rng.choice(["icmp", "all"]), "direction": "ingress",
                "port_range_min": None, "port_range_max": None}

    def gen_rules(self):
        return [self.gen_rule() for _ in range(self.rng.randrange(1, 4))]

    def gen_group(self):
        return self.maybe({"name": self.uniq("fz"), "region": "NORD-NO-KRS-1", "rules": self.gen_rules()},
                          "description", "fuzz")

    def gen_update(self):
        d = {"rules": self.gen_rules()}
        self.maybe(d, "name", self.uniq("fz"))
        return self.maybe(d, "description", "fuzz")

    # Barrack (barrack.schema.json)
    def brk_rule(self):
        a, b = self.ports()
        return {"direction": self.rng.choice(["ingress", "egress"]), "protocol": self.rng.choice(["tcp", "udp"]),
                "ethertype": "IPv4", "remote_ip_prefix": self.cidr(), "port_range_min": a, "port_range_max": b}

    def brk_firewall(self):
        return self.maybe({"name": self.uniq("fz"), "region": self.rng.choice(["US-1", "NORWAY-1"])},
                          "description", "fuzz")

    # HostUp (hostup.schema.json)
    def hu_rule(self):
        a, b = self.ports()
        return {"type": "in", "action": self.rng.choice(["ACCEPT", "DROP", "REJECT"]),
                "proto": self.rng.choice(["tcp", "udp"]), "dport": "%d:%d" % (a, b) if b > a else str(a),
                "source": self.cidr(), "comment": "fuzz %d" % self.rng.randrange(10 ** 6),
                "enable": self.rng.choice([0, 1])}

    def hu_options(self):
        d = {"enable": self.rng.choice([0, 1])}
        return self.maybe(d, "policy_in", self.rng.choice(["ACCEPT", "DROP"]))


# (provider, method, schema path, wire path with placeholders, generator)
ROUTES = [
    ("exoscale", "POST", "/security-group", "/security-group", Gen.exo_group),
    ("exoscale", "POST", "/security-group/{id}/rules", "/security-group/{exo_sg}/rules", Gen.exo_rule),
    ("gcore", "POST", "/cloud/v2/security_groups/{project_id}/{region_id}",
     "/cloud/v2/security_groups/{gc_p}/{gc_r}", Gen.gc_group),
    ("gcore", "PATCH", "/cloud/v2/security_groups/{project_id}/{region_id}/{group_id}",
     "/cloud/v2/security_groups/{gc_p}/{gc_r}/{gc_sg}", Gen.gc_update),
    ("gcore", "POST", "/cloud/v2/security_groups/{project_id}/{region_id}/{group_id}/rules",
     "/cloud/v2/security_groups/{gc_p}/{gc_r}/{gc_sg}/rules", Gen.gc_rule),
    ("genesis", "POST", "/security-groups", "/security-groups", Gen.gen_group),
    ("genesis", "PATCH", "/security-groups/{id}", "/security-groups/{gen_sg}", Gen.gen_update),
    ("barrack", "POST", "/instances/{id}/security-rules/", "/instances/{brk_inst}/security-rules/", Gen.brk_rule),
    ("barrack", "POST", "/firewalls/", "/firewalls/", Gen.brk_firewall),
    ("barrack", "POST", "/firewalls/{id}/firewall-rules/", "/firewalls/{brk_fw}/firewall-rules/", Gen.brk_rule),
    ("hostup", "POST", "/vm/{vmid}/firewall", "/vm/{hu_vm}/firewall", Gen.hu_rule),
    ("hostup", "PUT", "/vm/{vmid}/firewall/options", "/vm/{hu_vm}/firewall/options", Gen.hu_options),
]

UNSET = object()


def mutations(value, path=()):
    """(description, path, replacement) for every place in value; UNSET removes the key."""
    out = []
    if isinstance(value, dict):
        out.append(("{} -> []", path, []))
        for k, v in value.items():
            out.append(("missing " + k, path + (k,), UNSET))
            out.extend(mutations(v, path + (k,)))
    elif isinstance(value, list):
        out.append(("[] -> {}", path, {}))
        if value:
            out.append(("over maxItems", path, value * (260 // len(value) + 1)))
            out.extend(mutations(value[0], path + (0,)))
    else:
        out.append(("null", path, None))
        if isinstance(value, bool) or value is None:
            out.append(("string for " + repr(value), path, "yes"))
        elif isinstance(value, int):
            out += [("string port", path, str(value)), ("boolean", path, True),
                    ("fractional", path, float(value) + 0.5), ("integral float", path, float(value)),
                    ("out of range low", path, -100000), ("out of range high", path, 10 ** 7)]
        elif isinstance(value, str):
            out += [("number for string", path, 12345), ("boolean", path, False),
                    ("unknown enum value", path, "not-a-value"), ("over maxLength", path, "x" * 1100),
                    ("empty string", path, "")]
        elif isinstance(value, float):
            out.append(("string", path, str(value)))
    return out


def apply(value, path, replacement):
    if not path:
        return replacement
    copy = json.loads(json.dumps(value))
    node = copy
    for p in path[:-1]:
        node = node[p]
    if replacement is UNSET:
        del node[path[-1]]
    else:
        node[path[-1]] = replacement
    return copy


def main():
    schemas = schemalib.load_all(sys.argv[1])
    rng = random.Random(int(sys.argv[2]))
    per_route = int(sys.argv[3])
    gen = Gen(rng)
    for provider, method, schema_path, wire, make in ROUTES:
        p = schemas[provider]
        route = p.route(method, schema_path)
        if route is None or route.get("request") is None:
            sys.exit("fuzz_bodies: no request schema for %s %s %s" % (provider, method, schema_path))
        schema = route["request"]
        emitted = 0
        while emitted < per_route:
            base = make(gen)
            errs = p.errors(schema, base)
            if errs:
                sys.exit("fuzz_bodies: a generated valid body breaks the %s schema: %s %s" % (provider, base, errs))
            cases = [("valid", base, True)]
            muts = mutations(base)
            rng.shuffle(muts)
            for what, path, repl in muts[:8]:
                body = apply(base, path, repl)
                if p.errors(schema, body):
                    cases.append(("%s at /%s" % (what, "/".join(map(str, path))), body, False))
            for what, body, valid in cases:
                if emitted >= per_route:
                    break
                print(json.dumps({"provider": provider, "method": method, "path": wire, "valid": valid,
                                  "what": what, "body": json.dumps(body)}))
                emitted += 1


main()
