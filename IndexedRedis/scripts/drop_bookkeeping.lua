-- The last step of a full drop (destroyModel(full=True)): once the live generation is
-- an empty one and no reset is being written or freed, drop every bookkeeping key of
-- the model.  Refuses, dropping nothing, when a write came in since the data was freed.
-- KEYS: 1 generation pointer, 2 staging zset, 3 dead set, 4 the live generation's
--   objs hash, 5 its ids, 6.. the other bookkeeping keys
-- ARGV: 1 the (empty) generation the drop made live
-- Reply: {1, how many keys existed} | {0} when a write or a reset came in meanwhile
if current_gen(KEYS[1]) ~= ARGV[1] then return {0} end
if redis.call('HLEN', KEYS[4]) > 0 or redis.call('ZCARD', KEYS[5]) > 0 or redis.call('ZCARD', KEYS[2]) > 0
    or redis.call('SCARD', KEYS[3]) > 0 then
  return {0}
end
local dropped = 0
for i = 1, #KEYS do dropped = dropped + redis.call('UNLINK', KEYS[i]) end
return {1, dropped}
