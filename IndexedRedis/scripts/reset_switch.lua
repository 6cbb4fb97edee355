-- Make a fully written generation the live one: one O(1) pointer switch.
-- The generation it replaces, and staging generations whose reset's lease lapsed (it
-- died), are handed to the dead set for freeing in batches; the switch is recorded.
-- KEYS: 1 generation pointer, 2 staging zset, 3 dead set, 4 last reset hash,
--   5 (optional) a refresh lease the switch must still hold
-- ARGV: 1 generation, 2 when the reset began (server time ms), 3 how many objects,
--   4 (with KEYS[5]) the lease's token
-- Reply: {1, replaced generation} | {0} when this generation was abandoned meanwhile
--   | {2, holder or ''} when the lease is no longer this token's: nothing switched.

if KEYS[5] then
  local holder = redis.call('GET', KEYS[5])
  if holder ~= ARGV[4] then return {2, holder or ''} end
end
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return {0} end
local old = redis.call('GET', KEYS[1]) or '0'
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], old)
sweep_lapsed(KEYS[2], KEYS[3], KEYS[1])
redis.call('HSET', KEYS[4], 'generation', ARGV[1], 'started_ms', ARGV[2], 'switched_ms', server_ms(),
           'objects', ARGV[3])
return {1, old}
