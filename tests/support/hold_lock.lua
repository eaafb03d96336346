-- A playbook that holds its lock for e2e tests: given HOLD_MARK and HOLD_RELEASE (file names), it
-- creates HOLD_MARK once it runs (and so holds the playbook lock), and ends when HOLD_RELEASE
-- appears, or after 30 s; without them it ends at once. Tests copy it into their own directory,
-- so that each has a lock key of its own.
local mark, release = os.getenv("HOLD_MARK"), os.getenv("HOLD_RELEASE")
if not mark then return end
io.open(mark, "w"):close()
for _ = 1, 300 do
  if io.open(release) then return end
  require("sg").sleep(0.1)
end
