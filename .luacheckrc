std = "lua54"
max_line_length = 170
-- the Lua test harness and playbooks get `arg` from sgrun, as from lua
read_globals = { "arg" }
