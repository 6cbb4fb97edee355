-- Give up a reset: its generation will never be shown, and goes to be freed.
-- KEYS: 1 staging zset, 2 dead set.  ARGV: 1 generation.  Reply: {1}
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[1])
return {1}
