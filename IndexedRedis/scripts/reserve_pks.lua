-- Reserve primary keys for new objects before a save that must know them in advance
-- (a record that links to an object saved in the same step stores that object's pk).
-- KEYS: the pk counters.  ARGV: how many pks to reserve on each.
-- Reply: {1, first reserved pk on each counter...}
local firsts = {1}
for i = 1, #KEYS do
  local n = tonumber(ARGV[i])
  firsts[i + 1] = redis.call('INCRBY', KEYS[i], n) - n + 1
end
return firsts
