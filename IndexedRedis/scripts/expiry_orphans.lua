-- check: walk a TTL model's expiry zset a bounded slice at a time (by rank), naming the
-- entries that have no record (drift), and count the expired objects waiting for a
-- sweep (not drift); changes nothing.
-- KEYS: 1 generation pointer, 2 objs hash, 3 expiry zset.
-- ARGV: 1 expected generation, 2 first rank, 3 how many.
-- Reply: {1, {pk without a record...}, entries walked, expired in all, zset size}
--   | {0, generation}

local gen = current_gen(KEYS[1])
if gen ~= ARGV[1] then return {0, gen} end
local first = tonumber(ARGV[2])
local pks = redis.call('ZRANGE', KEYS[3], first, first + tonumber(ARGV[3]) - 1)
local orphans = {}
for _, pk in ipairs(pks) do
  if redis.call('HEXISTS', KEYS[2], pk) == 0 then orphans[#orphans + 1] = pk end
end
return {1, orphans, #pks, redis.call('ZCOUNT', KEYS[3], '-inf', server_ms()), redis.call('ZCARD', KEYS[3])}
