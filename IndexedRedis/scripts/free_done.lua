-- Finish freeing a dead generation: drop its record hash and id set (UNLINK frees
-- them off the main thread) and forget it.
-- KEYS: 1 dead set, 2 objs hash, 3 ids set.  ARGV: 1 generation.  Reply: {1}
redis.call('UNLINK', KEYS[2], KEYS[3])
redis.call('SREM', KEYS[1], ARGV[1])
return {1}
