-- Delete objects by pk in one atomic step, removing exactly their index entries.
-- As in save.lua, the client declares the index keys it believes hold each object;
-- the stored record decides, and a wrong belief makes the call write nothing.
--
-- KEYS: 1 generation pointer, 2 objs hash, 3 ids set, 4.. index sets
-- ARGV: 1 expected generation, 2 indexed field count F, 3..2+F field names, then per
--   object: pk, then F (kind, believed stored value, key number) triples; kinds as in
--   save.lua ('a' absent comes with key number 0).
-- Reply: {1, deleted count} | {0, generation} | {2, object number, record}

local gen = current_gen(KEYS[1])
if gen ~= ARGV[1] then return {0, gen} end

local objs_key, ids_key = KEYS[2], KEYS[3]
local nfields = tonumber(ARGV[2])
local names = {}
for i = 1, nfields do names[i] = ARGV[2 + i] end

local doomed = {}
local pos = 3 + nfields
local o = 0
while pos <= #ARGV do
  o = o + 1
  local pk = ARGV[pos]
  pos = pos + 1
  local stored = redis.call('HGET', objs_key, pk)
  if stored then
    local record = cmsgpack.unpack(stored)
    local keys = {}
    for i = 1, nfields do
      local key = tonumber(ARGV[pos + 2])
      if not matches(record[names[i]], ARGV[pos], ARGV[pos + 1]) then return {2, o, stored} end
      if key ~= 0 then keys[#keys + 1] = key end
      pos = pos + 3
    end
    doomed[#doomed + 1] = {pk, keys}
  else
    pos = pos + 3 * nfields
  end
end

for _, d in ipairs(doomed) do
  for _, key in ipairs(d[2]) do redis.call('SREM', KEYS[key], d[1]) end
  redis.call('SREM', ids_key, d[1])
  redis.call('HDEL', objs_key, d[1])
end
return {1, #doomed}
