-- stats: the memory of some keys of a model (MEMORY USAGE, which samples the elements
-- of big keys, so each costs little however big the key).  Read-only.
-- KEYS: the keys.  ARGV: 1 elements to sample per key.
-- Reply: {1, bytes of each key (0 when it is gone)...}
local sizes = {1}
for i = 1, #KEYS do
  sizes[i + 1] = redis.call('MEMORY', 'USAGE', KEYS[i], 'SAMPLES', ARGV[1]) or 0
end
return sizes
