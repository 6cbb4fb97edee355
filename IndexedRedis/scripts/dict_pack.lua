-- Pack a staging generation's text dictionaries into blocks (see textindex.lua): one
-- bounded step over all of them, and the reset's lease renewed.  A reset's batches
-- write its values, in no order, one member each into a load zset per field; packed
-- into the dictionaries before the switch, they take a skiplist node per block of
-- values instead of one per value.  A small dataset's dictionaries pack in one call.
-- KEYS: 1 staging zset, then per text field: its load zset, its dictionary
-- ARGV: 1 generation, 2 lease ms, 3 values per step
-- Reply: {1, values still waiting (0: done)} | {0} the generation was abandoned

if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return {0} end
redis.call('ZADD', KEYS[1], 'XX', server_ms() + tonumber(ARGV[2]), ARGV[1])
local budget, waiting = tonumber(ARGV[3]), 0
for i = 2, #KEYS, 2 do
  if budget > 0 then
    local before = redis.call('ZCARD', KEYS[i])
    local left = dict_pack_step(KEYS[i], KEYS[i + 1], budget)
    budget = budget - (before - left)
    waiting = waiting + left
  else
    waiting = waiting + redis.call('ZCARD', KEYS[i])
  end
end
return {1, waiting}
