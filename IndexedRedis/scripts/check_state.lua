-- check / stats: a model's bookkeeping and the size of its live generation, read at
-- one instant.  Read-only; a key of the wrong type is reported (by its type), not read.
--
-- KEYS: 1 generation pointer, 2 generation counter, 3 pk counter, 4 staging zset,
--   5 dead set, 6 schemas hash, 7 last reset hash, 8 objs hash, 9 ids zset (the last
--   two of the generation the client believes is live)
-- ARGV: 1 that generation
-- Reply: {1, {the 9 keys' types}, the pointer (false when absent), genseq, nextpk, {staging gen, lease end...},
--   {dead gens}, {schemas tag, names...}, {last reset field, value...}, server time ms,
--   records, ids blocks, INFO stats, INFO memory} | {0, generation} when another one is live
--   | {2, type of the pointer} when the pointer is not a string

local expected = {'string', 'string', 'string', 'zset', 'set', 'hash', 'hash', 'hash', 'zset'}
local types = {}
for i = 1, #KEYS do
  local t = redis.call('TYPE', KEYS[i])['ok']
  if t ~= 'none' and t ~= expected[i] then types[i] = t else types[i] = '' end
end
if types[1] ~= '' then return {2, types[1]} end
local gen = current_gen(KEYS[1])
if gen ~= ARGV[1] then return {0, gen} end

local function read(i, command, ...)
  if types[i] ~= '' then return false end
  return redis.call(command, KEYS[i], ...)
end

return {1, types, redis.call('GET', KEYS[1]) or false, read(2, 'GET') or false, read(3, 'GET') or false,
        read(4, 'ZRANGE', 0, -1, 'WITHSCORES') or {}, read(5, 'SMEMBERS') or {}, read(6, 'HGETALL') or {},
        read(7, 'HGETALL') or {}, tostring(server_ms()), read(8, 'HLEN') or 0, read(9, 'ZCARD') or 0,
        redis.call('INFO', 'stats'), redis.call('INFO', 'memory')}
