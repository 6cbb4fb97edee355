-- Write one bounded batch of a reset into its private, not yet visible, generation.
-- Members are grouped by index key, so each key takes one command per batch.
-- KEYS: 1 staging zset, 2 objs hash, 3 ids zset, 4.. index keys
-- ARGV: 1 generation, 2 object count n, then n (pk, record) pairs, then groups:
--   'S' (set), key number, m, then m pks | 'Z' (sorted set), key number, m, then m/2
--   (score, member) pairs.
-- Reply: {1} | {0} when the generation was abandoned (it is no longer staging).

if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return {0} end
redis.call('ZADD', KEYS[1], 'XX', redis.call('TIME')[1], ARGV[1])  -- heartbeat

local n = tonumber(ARGV[2])
local last = 2 + 2 * n
local records, ids = {}, {}
for pos = 3, last, 2 do
  records[#records + 1] = ARGV[pos]
  records[#records + 1] = ARGV[pos + 1]
  ids[#ids + 1] = ARGV[pos]
  ids[#ids + 1] = ARGV[pos]
end
chunked_write('HSET', KEYS[2], records)
chunked_write('ZADD', KEYS[3], ids)

local pos = last + 1
while pos <= #ARGV do
  local kind, key, m = ARGV[pos], KEYS[tonumber(ARGV[pos + 1])], tonumber(ARGV[pos + 2])
  redis.call(kind == 'S' and 'SADD' or 'ZADD', key, unpack(ARGV, pos + 3, pos + 2 + m))
  pos = pos + 3 + m
end
return {1}
