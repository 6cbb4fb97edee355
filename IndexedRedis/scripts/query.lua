-- Find and fetch in one step: set algebra over the index sets, then the records.
--
-- KEYS: 1 generation pointer, 2 objs hash, 3 ids set, then nEq equality sets, then
--   nNe sets whose members are excluded.
-- ARGV: 1 expected generation, 2 operation, 3 nEq, 4 nNe, then for 'get' the pks.
-- Operations and replies (after the status 1):
--   all    -> {pks}, {records}          count  -> n
--   pks    -> {pks}                     first / last -> {pk}, {record} (lowest / highest pk)
--   get    -> {pks}, {records or false} exists -> 0 or 1 (ARGV[5] is the pk)
--   random -> {pk}, {record} (ARGV[5] is a random number from the client)
-- Reply {0, generation} when the generation moved.

local gen = current_gen(KEYS[1])
if gen ~= ARGV[1] then return {0, gen} end

local objs_key, ids_key = KEYS[2], KEYS[3]
local op = ARGV[2]
local n_eq, n_ne = tonumber(ARGV[3]), tonumber(ARGV[4])

if op == 'get' then
  local pks = {}
  for i = 5, #ARGV do pks[#pks + 1] = ARGV[i] end
  if #pks == 0 then return {1, {}, {}} end
  return {1, pks, chunked_call('HMGET', objs_key, pks)}
elseif op == 'exists' then
  return {1, redis.call('HEXISTS', objs_key, ARGV[5])}
end

-- No filter at all: the whole hash.
if n_eq == 0 and n_ne == 0 then
  if op == 'random' then
    local pk = redis.call('SRANDMEMBER', ids_key)
    if not pk then return {1, {}, {}} end
    return {1, {pk}, {redis.call('HGET', objs_key, pk)}}
  end
  if op == 'count' then return {1, redis.call('HLEN', objs_key)} end
  if op == 'pks' then return {1, redis.call('HKEYS', objs_key)} end
  if op == 'all' then
    local flat = redis.call('HGETALL', objs_key)
    local pks, records = {}, {}
    for i = 1, #flat, 2 do
      pks[#pks + 1] = flat[i]
      records[#records + 1] = flat[i + 1]
    end
    return {1, pks, records}
  end
end

local members
if n_eq == 0 then
  local excluded = {}
  for i = 1, n_ne do excluded[i] = KEYS[3 + i] end
  members = redis.call('SDIFF', ids_key, unpack(excluded))
else
  if n_eq == 1 then
    members = redis.call('SMEMBERS', KEYS[4])
  else
    local sets = {}
    for i = 1, n_eq do sets[i] = KEYS[3 + i] end
    members = redis.call('SINTER', unpack(sets))
  end
  for i = 1, n_ne do
    if #members == 0 then break end
    local flags = chunked_call('SMISMEMBER', KEYS[3 + n_eq + i], members)
    local kept = {}
    for j = 1, #members do
      if flags[j] == 0 then kept[#kept + 1] = members[j] end
    end
    members = kept
  end
end

if op == 'count' then return {1, #members} end
if op == 'pks' then return {1, members} end
if op == 'random' then
  if #members == 0 then return {1, {}, {}} end
  local pick = members[(tonumber(ARGV[5]) % #members) + 1]
  return {1, {pick}, {redis.call('HGET', objs_key, pick)}}
end
if op == 'first' or op == 'last' then
  local best, best_n = nil, nil
  for _, pk in ipairs(members) do
    local n = tonumber(pk)
    if best == nil or (op == 'first' and n < best_n) or (op == 'last' and n > best_n) then
      best, best_n = pk, n
    end
  end
  if best == nil then return {1, {}, {}} end
  return {1, {best}, {redis.call('HGET', objs_key, best)}}
end
if #members == 0 then return {1, {}, {}} end
return {1, members, chunked_call('HMGET', objs_key, members)}
