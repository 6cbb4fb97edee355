-- Delete objects by pk in one atomic step, removing exactly their index entries.
-- As in save.lua, the client declares the index keys it believes hold each object;
-- the stored record decides, and a wrong belief makes the call write nothing.
--
-- KEYS: 1 generation pointer, 2 objs hash, 3 ids zset, 4 schemas hash, 5 cache flag,
--   6.. index keys and stamps
-- ARGV: 1 expected generation (with a TTL model's expiry zset #: '<gen>+<#>', or
--   '<gen>!<#>' for a sweep, see expiry.py), 2 indexed field count F, 3..2+F field names, then F
--   (score zset key number, lex zset key number, dictionary key number, folded
--   dictionary key number) groups (0: the field has none), then the layout hash's key
--   number, the model's layout digest, its layout (field, letters) as one msgpack
--   array, then per object: pk, its stamp's key number, then F groups of (kind,
--   believed stored value, set key number, lex flag, lex text, folded member ('':
--   none)); kinds as in save.lua ('a' absent comes with key number 0).  A value whose
--   set empties leaves the field's dictionaries (textindex.lua).  While the cache flag exists, a deleted object's stamp is SET
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

local zsets, lexes, dicts, folds = {}, {}, {}, {}
for i = 1, nfields do
  local at = 2 + nfields + 4 * (i - 1)
  zsets[i], lexes[i] = tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
  dicts[i], folds[i] = tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4])
end
local head = 3 + 5 * nfields
local layout_key, layout_digest, layout_flat = KEYS[tonumber(ARGV[head])], ARGV[head + 1], cmsgpack.unpack(ARGV[head + 2])

local doomed = {}
local pos = head + 3
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
    local words = {}
    for i = 1, nfields do
      local key = tonumber(ARGV[pos + 2])
      if not matches(record[names[i]], ARGV[pos], ARGV[pos + 1]) then return {2, o, stored} end
      if key ~= 0 then keys[#keys + 1] = key end
      if ARGV[pos + 3] == '1' then lex[i] = ARGV[pos + 4] end
      if ARGV[pos] == 'v' and dicts[i] ~= 0 then words[i] = {key, ARGV[pos + 1], ARGV[pos + 5]} end
      pos = pos + 6
    end
    doomed[#doomed + 1] = {pk, keys, lex, stamp, words}
  else
    pos = pos + 6 * nfields
  end
end

local layout = #doomed > 0 and layout_sync(layout_key, ids_key, layout_digest, layout_flat) or {}
note_write(layout_key, layout)

local stamping = #doomed > 0 and redis.call('EXISTS', KEYS[5]) == 1
local gone = {}
for _, d in ipairs(doomed) do
  local pk = d[1]
  local padded = pad_pk(pk)
  for _, key in ipairs(d[2]) do redis.call('SREM', KEYS[key], pk) end
  for i = 1, nfields do
    if zsets[i] ~= 0 then redis.call('ZREM', KEYS[zsets[i]], padded) end
    if lexes[i] ~= 0 and d[3][i] then redis.call('ZREM', KEYS[lexes[i]], d[3][i] .. padded) end
    local word = d[5][i]
    if word and keeps_dict(layout, names[i]) and redis.call('SCARD', KEYS[word[1]]) == 0 then
      dict_leave(layout_key, names[i], KEYS[dicts[i]], KEYS[folds[i]], word[2], word[3])
    end
  end
  gone[#gone + 1] = pk
  redis.call('HDEL', objs_key, pk)
  if exp_key then redis.call('ZREM', exp_key, pk) end
  if stamping then
    redis.call('SET', KEYS[d[4]], '1')
    redis.call('DEL', KEYS[d[4]])
  end
end
ids_change(ids_key, gone, false)
return {1, #doomed}
