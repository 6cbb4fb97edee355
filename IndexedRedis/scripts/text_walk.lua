-- One bounded, read-only step of a walk over a text field's dictionaries (a plan for a
-- text lookup, or the values of a text order): about `budget` values are read, so
-- a field with a million distinct values never stalls the server.
-- KEYS: 1 generation pointer, 2 layout hash, 3 dictionary, 4 folded dictionary, 5 ids
-- ARGV: 1 expected generation, 2 field, 3 'w' (a condition: raw min, raw max, fold min,
--   fold max, needle, cursor, budget; see text_walk in textindex.lua) or 'o' (the order:
--   descending '1'/'0', where to go on from ('': the start; see text_order_walk), budget)
-- Reply: {1, version, cursor ('' done), values...} | {0, generation}
--   | {20, field, 'd'} (the dictionaries are not built)

local gen = current_gen(KEYS[1])
if gen ~= ARGV[1] then return {0, gen} end
text_layout_key = KEYS[2]
text_requirements[1] = {field = ARGV[2], letters = 'd'}
local refused = text_verify(KEYS[5])
if refused then return refused end
local version = redis.call('HGET', KEYS[2], 'v:' .. ARGV[2]) or '0'

local reply = {1, version}
if ARGV[3] == 'w' then
  local spec = {raw_min = ARGV[4], raw_max = ARGV[5], fold_min = ARGV[6], fold_max = ARGV[7], needle = ARGV[8]}
  local values, cursor = text_walk(KEYS[3], KEYS[4], spec, ARGV[9], tonumber(ARGV[10]))
  reply[3] = cursor
  for _, v in ipairs(values) do reply[#reply + 1] = v end
  return reply
end
local values, cursor = text_order_walk(KEYS[3], ARGV[4] == '1', ARGV[5], tonumber(ARGV[6]))
reply[3] = cursor
for _, v in ipairs(values) do reply[#reply + 1] = v end
return reply
