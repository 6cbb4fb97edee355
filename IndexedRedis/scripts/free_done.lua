-- Finish freeing a dead generation: drop its record hash, id set and sorted-set
-- indexes (UNLINK frees them off the main thread) and forget it.
-- KEYS: 1 dead set, 2 objs hash, 3 ids, 4.. sorted-set indexes.  ARGV: 1 generation.
-- Reply: {1}
for i = 2, #KEYS do redis.call('UNLINK', KEYS[i]) end
redis.call('SREM', KEYS[1], ARGV[1])
return {1}
