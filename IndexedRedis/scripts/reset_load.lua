-- Write one bounded batch of a reset into its private, not yet visible, generation.
-- Members are grouped by index set, so each set takes one SADD per batch.
-- KEYS: 1 staging zset, 2 objs hash, 3 ids set, 4.. index sets
-- ARGV: 1 generation, 2 object count n, then n (pk, record) pairs, then for each
--   index set: its key number, member count m, then m pks.
-- Reply: {1} | {0} when the generation was abandoned (it is no longer staging).

if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return {0} end
redis.call('ZADD', KEYS[1], 'XX', redis.call('TIME')[1], ARGV[1])  -- heartbeat

local n = tonumber(ARGV[2])
local last = 2 + 2 * n
local pairs_, pks = {}, {}
for pos = 3, last, 2 do
  pairs_[#pairs_ + 1] = ARGV[pos]
  pairs_[#pairs_ + 1] = ARGV[pos + 1]
  pks[#pks + 1] = ARGV[pos]
end
chunked_write('HSET', KEYS[2], pairs_)
chunked_write('SADD', KEYS[3], pks)

local pos = last + 1
while pos <= #ARGV do
  local key, m = KEYS[tonumber(ARGV[pos])], tonumber(ARGV[pos + 1])
  redis.call('SADD', key, unpack(ARGV, pos + 2, pos + 1 + m))
  pos = pos + 2 + m
end
return {1}
