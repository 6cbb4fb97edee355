-- One bounded step of a large text lookup (flows/text.py): the union of at most
-- UNION_STEP of a plan's value sets, stored in a scratch set of the generation that
-- expires by itself, so that the query then reads a few scratch sets, not thousands of
-- value sets.  Each step checks that the generation, the field's dictionary version
-- and the count of index writes ('_w' in the layout hash, see note_write) are those
-- the first step saw: the query that reads the scratch sets checks them again, so its
-- answer is the data as it was at one moment, as if it had run in one script.
-- KEYS ('add'): 1 generation pointer, 2 layout hash, 3 the scratch set, then the value sets
-- KEYS ('drop'): the scratch sets to delete
-- ARGV: 1 'add' | 'drop', then for 'add': 2 expected generation, 3 field, 4 the plan's
--   version, 5 the writes count of the first step ('': this is the first), 6 ms to keep
-- Reply: {1, writes count} | {0, generation} | {21} the dictionary changed | {23} a write
--   came in since the first step

if ARGV[1] == 'drop' then
  redis.call('UNLINK', unpack(KEYS))  -- freed off the main thread
  return {1}
end
local gen = current_gen(KEYS[1])
if gen ~= ARGV[2] then return {0, gen} end
local got = redis.call('HMGET', KEYS[2], 'v:' .. ARGV[3], '_w')
local writes = got[2] or '0'
if (got[1] or '0') ~= ARGV[4] then return {21} end
if ARGV[5] ~= '' and writes ~= ARGV[5] then return {23} end
redis.call('SUNIONSTORE', KEYS[3], unpack(KEYS, 4))
redis.call('PEXPIRE', KEYS[3], ARGV[6])
return {1, writes}
