-- wrk script for benches/load.sh and benches/scale.sh: every request carries
-- the next client address of a list in X-Forwarded-For (round robin), so that
-- mirrorgate does a real GeoIP lookup and selection for a different client
-- each time; optionally the request path rotates too, over a list of paths.
--
-- Usage: wrk ... -s benches/load/rotate-xff.lua URL -- ADDRS_FILE [PATH | @PATHS_FILE]
-- ADDRS_FILE has one address per line (anything after the first space is
-- ignored). PATH is the one request path (default /releases/1.0/demo-1.0.iso);
-- @PATHS_FILE names a file of request paths, one a line (each starting with
-- "/", sent as written), and request k then goes to path k with address k
-- (both lists round robin). The requests are built once per thread, in init,
-- so that the client spends no more per request than it would with a fixed
-- request: every server compared is driven with the same script and pays the
-- same.

local counter = 0

function setup(thread)
   thread:set("id", counter)
   counter = counter + 1
end

local requests = {}
local n = 0
local i = 0

-- The first field of every non-empty line of a file.
local function read_list(file, what)
   local list = {}
   local f = assert(io.open(file, "r"))
   for line in f:lines() do
      local word = line:match("^(%S+)")
      if word then
         list[#list + 1] = word
      end
   end
   f:close()
   if #list == 0 then
      error("rotate-xff.lua: no " .. what .. " in " .. file)
   end
   return list
end

function init(args)
   local file = args[1]
   if file == nil then
      error("rotate-xff.lua: give the address file after --")
   end
   local addrs = read_list(file, "address")
   local paths = { args[2] or "/releases/1.0/demo-1.0.iso" }
   if args[2] and args[2]:sub(1, 1) == "@" then
      paths = read_list(args[2]:sub(2), "path")
      for _, p in ipairs(paths) do
         if p:sub(1, 1) ~= "/" then
            error("rotate-xff.lua: a path must start with /: " .. p)
         end
      end
   end
   -- One request per entry of the longer list; the shorter one wraps around.
   n = math.max(#addrs, #paths)
   for k = 1, n do
      local addr = addrs[(k - 1) % #addrs + 1]
      local path = paths[(k - 1) % #paths + 1]
      requests[k] = wrk.format("GET", path, { ["X-Forwarded-For"] = addr })
   end
   -- Threads start at different places in the list.
   i = ((id or 0) * 7919) % n
end

function request()
   i = i % n + 1
   return requests[i]
end
