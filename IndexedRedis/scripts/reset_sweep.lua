-- Before a reset (or in a repair): hand staging generations whose lease lapsed to the
-- dead set, and tell which generations wait there to be freed.
-- KEYS: 1 staging zset, 2 dead set, 3 generation pointer.
-- Reply: {1, how many were handed over, {dead generations}}
local moved = sweep_lapsed(KEYS[1], KEYS[2], KEYS[3])
return {1, moved, redis.call('SMEMBERS', KEYS[2])}
