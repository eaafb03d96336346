-- The fleet inventory: one entry per account. Credentials are never written here: `profile`
-- names a section of the profile file mounted from the sgrun-profiles Secret.
return {
  { name = "shop-exoscale", provider = "exoscale", profile = "shop",
    groups = { { group = "web", source = "gcore:web" } } },
  { name = "shop-gcore", provider = "gcore", profile = "shop",
    groups = { { group = "web", source = "/etc/sgrun/inventory/web.snapshot.json" } } },
}
