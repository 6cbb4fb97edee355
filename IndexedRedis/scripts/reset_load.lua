-- Write one bounded batch of a reset into its private, not yet visible, generation.
-- KEYS: 1 staging zset, 2 pk counter, 3 objs hash, 4 ids set, 5.. index sets
-- ARGV: 1 generation, 2 index keys per object F, then per object:
--   pk ('' = assign a new one), record, then F key numbers.
-- Reply: {1, pk...} | {0} when the generation was abandoned (it is no longer staging).

if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return {0} end
redis.call('ZADD', KEYS[1], 'XX', redis.call('TIME')[1], ARGV[1])  -- heartbeat

local objs_key, ids_key, pk_key = KEYS[3], KEYS[4], KEYS[2]
local per = tonumber(ARGV[2])
local stride = 2 + per

-- Chosen pks push the counter ahead; the others take fresh numbers after them.
local top = tonumber(redis.call('GET', pk_key) or '0')
local fresh = 0
for pos = 3, #ARGV, stride do
  if ARGV[pos] == '' then
    fresh = fresh + 1
  elseif tonumber(ARGV[pos]) > top then
    top = tonumber(ARGV[pos])
  end
end
redis.call('SET', pk_key, top + fresh)

local pks = {1}
local members = {}
for pos = 3, #ARGV, stride do
  local pk = ARGV[pos]
  if pk == '' then
    top = top + 1
    pk = tostring(top)
  end
  redis.call('HSET', objs_key, pk, ARGV[pos + 1])
  members[#members + 1] = pk
  for i = 1, per do
    redis.call('SADD', KEYS[tonumber(ARGV[pos + 1 + i])], pk)
  end
  pks[#pks + 1] = pk
end
chunked_write('SADD', ids_key, members)
return pks
