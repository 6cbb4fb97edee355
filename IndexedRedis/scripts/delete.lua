-- Delete objects by pk in one atomic step, removing exactly their index entries.
-- As in save.lua, the client declares the index keys it believes hold each object;
-- the stored record decides, and a wrong belief makes the call write nothing.
--
-- KEYS: 1 generation pointer, 2 objs hash, 3 ids zset, 4 schemas hash, 5 cache flag,
--   6.. index keys and stamps
-- ARGV: 1 expected generation (with a TTL model's expiry zset #: '<gen>+<#>', or
--   '<gen>!<#>' for a sweep, see expiry.py), 2 indexed field count F, 3..2+F field names, then F
--   (score zset key number, lex zset key number) pairs (0: the field has none), then
--   per object: pk, its stamp's key number, then F groups of (kind, believed stored
--   value, set key number, lex flag, lex text); kinds as in save.lua ('a' absent comes
--   with key number 0).  While the cache flag exists, a deleted object's stamp is SET
--   and DELeted (see save.lua).
-- Reply: {1, deleted count} | {0, generation} | {2, object number, record}

local expected, exp_key, sweep = expected_gen(ARGV[1])
local gen = current_gen(KEYS[1])
if gen ~= expected then return {0, gen} end
-- A sweep deletes only the objects still expired at `now` (one saved again meanwhile
-- survives), and drops the expiry entries of its pks that have no record.
local now = sweep and server_ms() or 0

local objs_key, ids_key = KEYS[2], KEYS[3]
local nfields = tonumber(ARGV[2])
local names = {}
for i = 1, nfields do names[i] = ARGV[2 + i] end

local zsets, lexes = {}, {}
for i = 1, nfields do
  zsets[i] = tonumber(ARGV[2 + nfields + 2 * i - 1])
  lexes[i] = tonumber(ARGV[2 + nfields + 2 * i])
end

local doomed = {}
local pos = 3 + 3 * nfields
local o = 0
while pos <= #ARGV do
  o = o + 1
  local pk, stamp = ARGV[pos], tonumber(ARGV[pos + 1])
  pos = pos + 2
  local stored = redis.call('HGET', objs_key, pk)
  if sweep then
    if not stored then
      redis.call('ZREM', exp_key, pk)  -- an expiry entry that no record backs
    elseif not is_expired(redis.call('ZSCORE', exp_key, pk), now) then
      stored = nil  -- not (or no longer) expired: left alone
    end
  end
  if stored then
    local record = read_record(KEYS[4], stored)
    local keys = {}
    local lex = {}
    for i = 1, nfields do
      local key = tonumber(ARGV[pos + 2])
      if not matches(record[names[i]], ARGV[pos], ARGV[pos + 1]) then return {2, o, stored} end
      if key ~= 0 then keys[#keys + 1] = key end
      if ARGV[pos + 3] == '1' then lex[i] = ARGV[pos + 4] end
      pos = pos + 5
    end
    doomed[#doomed + 1] = {pk, keys, lex, stamp}
  else
    pos = pos + 5 * nfields
  end
end

local stamping = #doomed > 0 and redis.call('EXISTS', KEYS[5]) == 1
for _, d in ipairs(doomed) do
  local pk = d[1]
  local padded = string.format('%012d', tonumber(pk))
  for _, key in ipairs(d[2]) do redis.call('SREM', KEYS[key], pk) end
  for i = 1, nfields do
    if zsets[i] ~= 0 then redis.call('ZREM', KEYS[zsets[i]], padded) end
    if lexes[i] ~= 0 and d[3][i] then redis.call('ZREM', KEYS[lexes[i]], d[3][i] .. padded) end
  end
  redis.call('ZREM', ids_key, pk)
  redis.call('HDEL', objs_key, pk)
  if exp_key then redis.call('ZREM', exp_key, pk) end
  if stamping then
    redis.call('SET', KEYS[d[4]], '1')
    redis.call('DEL', KEYS[d[4]])
  end
end
return {1, #doomed}
