-- Give up a reset: its generation will never be shown, and goes to be freed.
-- If the switch did happen (its reply was lost), the generation is live: keep it.
-- KEYS: 1 staging zset, 2 dead set, 3 generation pointer.  ARGV: 1 generation.
-- Reply: {1} | {0} when the generation turned out to be live.
redis.call('ZREM', KEYS[1], ARGV[1])
if (redis.call('GET', KEYS[3]) or '0') == ARGV[1] then return {0} end
redis.call('SADD', KEYS[2], ARGV[1])
return {1}
