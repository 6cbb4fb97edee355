-- Start a reset: hand out a new generation and register it as being written.
-- KEYS: 1 generation counter, 2 staging zset.   Reply: {1, generation}
local gen = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], redis.call('TIME')[1], gen)
return {1, gen}
