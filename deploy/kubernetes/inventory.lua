-- The fleet inventory: one entry per account (format: stdlib/sg/fleet.lua). Credentials are never
-- written here: `profile` names a section prefix of the profile file mounted from the
-- sgrun-profiles Secret ([shop.exoscale], [shop.gcore]); `env = {api_key = "VAR"}` would name an
-- environment variable instead. A group's source is a snapshot file (put it in the ConfigMap
-- beside this file) or "ACCOUNT:GROUP", another account of this inventory by its name.
return {
  { name = "shop-exoscale", provider = "exoscale", profile = "shop",
    groups = { { group = "web", source = "shop-gcore:web" } } },
  { name = "shop-gcore", provider = "gcore", profile = "shop",
    groups = { { group = "web", source = "/etc/sgrun/inventory/web.snapshot.json" } } },
}
