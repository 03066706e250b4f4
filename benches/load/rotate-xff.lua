-- wrk script for benches/load.sh: every request carries the next client
-- address of a list in X-Forwarded-For (round robin), so that mirrorgate does
-- a real GeoIP lookup and selection for a different client each time.
--
-- Usage: wrk ... -s benches/load/rotate-xff.lua URL -- ADDRS_FILE [PATH]
-- ADDRS_FILE has one address per line (anything after the first space is
-- ignored). The requests are built once per thread, in init, so that the
-- client spends no more per request than it would with a fixed request: the
-- reference server is driven with the same script and pays the same.

local counter = 0

function setup(thread)
   thread:set("id", counter)
   counter = counter + 1
end

local requests = {}
local n = 0
local i = 0

function init(args)
   local file = args[1]
   local path = args[2] or "/releases/1.0/demo-1.0.iso"
   if file == nil then
      error("rotate-xff.lua: give the address file after --")
   end
   local f = assert(io.open(file, "r"))
   for line in f:lines() do
      local addr = line:match("^(%S+)")
      if addr then
         n = n + 1
         requests[n] = wrk.format("GET", path, { ["X-Forwarded-For"] = addr })
      end
   end
   f:close()
   if n == 0 then
      error("rotate-xff.lua: no address in " .. file)
   end
   -- Threads start at different places in the list.
   i = ((id or 0) * 7919) % n
end

function request()
   i = i % n + 1
   return requests[i]
end
