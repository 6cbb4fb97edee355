-- repair: drop garbage keys that a SCAN of the model's keys found (UNLINK frees them
-- off the main thread).  Keys of one generation that is neither live nor being written
-- by a reset, or ('layout') index keys of a former layout in the live generation.
-- KEYS: 1 generation pointer, 2 staging zset, then the keys
-- ARGV: 1 'gen' | 'layout', 2 the generation the keys are of
-- Reply: {1, how many existed} | {0} when the generation is live or staging ('gen'), or
--   no longer live ('layout'): nothing was dropped.
local live = current_gen(KEYS[1])
if ARGV[1] == 'gen' then
  if live == ARGV[2] or redis.call('ZSCORE', KEYS[2], ARGV[2]) then return {0} end
elseif live ~= ARGV[2] then
  return {0}
end
local dropped = 0
for i = 3, #KEYS do dropped = dropped + redis.call('UNLINK', KEYS[i]) end
return {1, dropped}
