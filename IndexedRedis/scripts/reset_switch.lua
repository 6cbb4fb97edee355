-- Make a fully written generation the live one: one O(1) pointer switch.
-- The generation it replaces, and staging generations whose writer stopped sending
-- heartbeats (it crashed), are handed to the dead set for freeing in batches.
-- KEYS: 1 generation pointer, 2 staging zset, 3 dead set
-- ARGV: 1 generation, 2 seconds after which a silent staging generation is abandoned
-- Reply: {1, replaced generation} | {0} when this generation was abandoned meanwhile.

if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return {0} end
local old = redis.call('GET', KEYS[1]) or '0'
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], old)
local cutoff = tonumber(redis.call('TIME')[1]) - tonumber(ARGV[2])
local silent = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', cutoff, 'LIMIT', 0, 100)
for _, g in ipairs(silent) do
  redis.call('ZREM', KEYS[2], g)
  redis.call('SADD', KEYS[3], g)
end
return {1, old}
