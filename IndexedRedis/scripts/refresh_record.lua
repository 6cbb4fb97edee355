-- Record how a refresh run went, in the hash beside the model's dataset.
-- KEYS: 1 refresh state hash, 2 the model's generation pointer.
-- ARGV: 1 the generation the run's dataset lives in ('' for a failed run), 2 its digest
--   ('' to keep the stored one), 3 'ok' | 'error', then (field, value) pairs to set.
-- The digest is bound to the generation it describes, and only if that generation is
-- still the live one (a reset by someone else meanwhile would make it describe nothing).
-- Reply: {1, 1 if the digest was stored else 0}
local live = redis.call('GET', KEYS[2]) or '0'
local stored = 0
if ARGV[2] ~= '' and ARGV[1] == live then
  redis.call('HSET', KEYS[1], 'digest', ARGV[2], 'digest_gen', live)
  stored = 1
elseif ARGV[3] == 'ok' then
  redis.call('HDEL', KEYS[1], 'digest', 'digest_gen')
end
if ARGV[3] == 'ok' then
  redis.call('HINCRBY', KEYS[1], 'runs', 1)
else
  redis.call('HINCRBY', KEYS[1], 'failures', 1)
end
if #ARGV > 3 then redis.call('HSET', KEYS[1], unpack(ARGV, 4, #ARGV)) end
return {1, stored}
