-- Write one bounded batch of a reset into its private, not yet visible, generation,
-- and renew the reset's lease.
-- Members are grouped by index key, so each key takes one command per batch.
-- KEYS: 1 staging zset, 2 objs hash, 3 ids zset (see lib.lua), 4.. index keys
-- ARGV: 1 generation, 2 lease ms, 3 object count n, then n (pk, record) pairs, then
--   groups: 'S' (set), key number, m, then m pks | 'U' (set of a UNIQUE_FIELDS value),
--   the same, but refused unless it holds one pk and the key is still empty (an earlier
--   batch of this reset took no such value) | 'Z' (sorted set), key number, m, then m/2
--   (score, member) pairs (text dictionaries too) | 'H' (the layout hash), key number, m,
--   then m/2 (field, value) pairs | 'E' (a TTL model's expiry zset), key number, m, then
--   m/2 (ms from now, pk) pairs.
-- Reply: {1} | {0} when the generation was abandoned (it is no longer staging: its lease
--   lapsed and another reset or a repair freed it)
--   | {4, key number} when a unique value appears twice; nothing of the batch is written.

if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return {0} end

local n = tonumber(ARGV[3])
local last = 3 + 2 * n

local pos = last + 1
while pos <= #ARGV do  -- checks before the first write
  local kind, number, m = ARGV[pos], tonumber(ARGV[pos + 1]), tonumber(ARGV[pos + 2])
  if kind == 'U' and (m ~= 1 or redis.call('EXISTS', KEYS[number]) == 1) then return {4, number} end
  pos = pos + 3 + m
end

redis.call('ZADD', KEYS[1], 'XX', server_ms() + tonumber(ARGV[2]), ARGV[1])
local records, ids = {}, {}
for p = 4, last, 2 do
  records[#records + 1] = ARGV[p]
  records[#records + 1] = ARGV[p + 1]
  ids[#ids + 1] = ARGV[p]
end
chunked_write('HSET', KEYS[2], records)
ids_change(KEYS[3], ids, true)

pos = last + 1
while pos <= #ARGV do
  local kind, key, m = ARGV[pos], KEYS[tonumber(ARGV[pos + 1])], tonumber(ARGV[pos + 2])
  local cmd = (kind == 'Z' or kind == 'E') and 'ZADD' or (kind == 'H' and 'HSET' or 'SADD')
  if kind == 'E' then  -- expiry: ms from now, by the server's clock
    local now = server_ms()
    for i = pos + 3, pos + 2 + m, 2 do ARGV[i] = now + tonumber(ARGV[i]) end
  end
  for i = pos + 3, pos + 2 + m, CHUNK do
    redis.call(cmd, key, unpack(ARGV, i, math.min(i + CHUNK - 1, pos + 2 + m)))
  end
  pos = pos + 3 + m
end
return {1}
