-- Helpers shared by every IndexedRedis script; prepended to each script's source.
-- Replies start with a status: 1 done, 0 stale generation (then the current one),
-- 2 a belief about stored values was wrong (then the object number and its record),
-- 3 a partial update found no stored record (then the object number),
-- 4 a unique value is taken (then the object number and the field),
-- 5 a write that needed the stored record unchanged found it changed or gone
-- (then the object number).

local function current_gen(gen_key)
  return redis.call('GET', gen_key) or '0'
end

-- The server's clock in milliseconds since the epoch (reset leases are measured by it,
-- so clients' clocks never matter).
local function server_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Hand the staging generations whose reset's lease lapsed (its owner died, or stopped
-- writing for longer than its lease) to the dead set; at most 100 per call.
local function sweep_lapsed(staging_key, dead_key, gen_key)
  local lapsed = redis.call('ZRANGEBYSCORE', staging_key, '-inf', '(' .. server_ms(), 'LIMIT', 0, 100)
  local live = current_gen(gen_key)
  for _, g in ipairs(lapsed) do
    redis.call('ZREM', staging_key, g)
    if g ~= live then redis.call('SADD', dead_key, g) end
  end
  return #lapsed
end

-- A pk's decimal text (tostring writes 10^14 and up as '1e+14': Lua prints 14 digits),
-- and a pk as sorted-set members hold it, zero-padded to PK_DIGITS so that ties sort by
-- pk (every pk is below 2^53, keys.MAX_PK: 16 digits, keys.PK_DIGITS).
local PK_DIGITS = 16
local function pk_text(n) return string.format('%d', n) end
local function pad_pk(pk) return string.format('%016d', tonumber(pk)) end
local function unpad_pk(digits) return (string.match(digits, '^0*(%d+)$')) end

-- The ids zset: every pk of a generation, in blocks of 64 consecutive pks (block
-- pk // 64).  A block's member is its bitmap, 8 bytes (bit b of byte j, from 0, stands
-- for pk 64 * block + 8 * j + b), then the block number in decimal; its score is the
-- block number.  A member per pk would take about 100 bytes each (skiplist node, dict
-- entry, member); a dense generation takes about 2 per pk this way.  A block with no
-- pk left is removed.  The count of pks is the objs hash's HLEN.
local ID_FLAGS = {1, 2, 4, 8, 16, 32, 64, 128}
local ID_EMPTY = '\0\0\0\0\0\0\0\0'

-- The member of a block (number) in the ids zset, or nil.  (Members of no valid form
-- are left for check to report.)
local function id_member_at(ids_key, text)
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', ids_key, text, text)) do
    if #member > 8 and string.sub(member, 9) == text then return member end
  end
  return nil
end
local function id_member(ids_key, block) return id_member_at(ids_key, pk_text(block)) end

-- Set (`on`) or clear the bits of `offsets` (0-63) in one block; returns how many changed.
local function id_bits(ids_key, block, offsets, on)
  local member = id_member(ids_key, block)
  local bytes = {string.byte(member or ID_EMPTY, 1, 8)}
  local changed = 0
  for _, offset in ipairs(offsets) do
    local j = math.floor(offset / 8) + 1
    local flag = ID_FLAGS[offset % 8 + 1]
    if (bit.band(bytes[j], flag) ~= 0) ~= on then
      bytes[j] = on and bytes[j] + flag or bytes[j] - flag
      changed = changed + 1
    end
  end
  if changed > 0 then
    if member then redis.call('ZREM', ids_key, member) end
    local bits = string.char(unpack(bytes))
    if bits ~= ID_EMPTY then redis.call('ZADD', ids_key, pk_text(block), bits .. pk_text(block)) end
  end
  return changed
end

-- Add (`on`) or remove pks (decimal text or numbers) in the ids zset: one read and at
-- most two writes per block touched.  Returns how many changed.
local function ids_change(ids_key, pks, on)
  local offsets, order = {}, {}
  for _, pk in ipairs(pks) do
    local n = tonumber(pk)
    local block = math.floor(n / 64)
    local list = offsets[block]
    if not list then
      list = {}
      offsets[block] = list
      order[#order + 1] = block
    end
    list[#list + 1] = n - block * 64
  end
  local changed = 0
  for _, block in ipairs(order) do changed = changed + id_bits(ids_key, block, offsets[block], on) end
  return changed
end

-- One pk into (`on`) or out of the ids zset, as id_bits does for one offset (a save's,
-- on every save: only the one byte that changes is taken apart, the block's text made
-- once).  Returns 1 if it changed, else 0.
local function id_one(ids_key, pk, on)
  local n = tonumber(pk)
  local block = math.floor(n / 64)
  local offset = n - block * 64
  local text = pk_text(block)
  local member = id_member_at(ids_key, text)
  local bits = member and string.sub(member, 1, 8) or ID_EMPTY
  local j = math.floor(offset / 8) + 1
  local flag = ID_FLAGS[offset % 8 + 1]
  local byte = string.byte(bits, j)
  if (bit.band(byte, flag) ~= 0) == on then return 0 end
  bits = string.sub(bits, 1, j - 1) .. string.char(on and byte + flag or byte - flag) .. string.sub(bits, j + 1)
  if member then redis.call('ZREM', ids_key, member) end
  if bits ~= ID_EMPTY then redis.call('ZADD', ids_key, text, bits .. text) end
  return 1
end
local function id_add(ids_key, pk) return id_one(ids_key, pk, true) end
local function id_remove(ids_key, pk) return id_one(ids_key, pk, false) end

-- Whether the ids zset holds a pk.
local function id_has(ids_key, pk)
  local n = tonumber(pk)
  local block = math.floor(n / 64)
  local member = id_member(ids_key, block)
  if not member then return false end
  local offset = n - block * 64
  return bit.band(string.byte(member, math.floor(offset / 8) + 1), ID_FLAGS[offset % 8 + 1]) ~= 0
end

-- A pk's text as decoding makes it: its tens' text (made once per ten pks), then its
-- last digit; a third cheaper than string.format per pk, which is most of what
-- decoding costs.
local ID_DIGITS = {[0] = '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'}
local ID_FULL = '\255\255\255\255\255\255\255\255'
local function tens_text(t) return t > 0 and pk_text(t) or '' end

-- The 64 pks of a full block from `base`, appended to `out` after position `n`: a run
-- of ten at a time (what a reset writes).
local function id_run(base, out, n, desc)
  local pk, last, step = base, base + 63, 1
  if desc then pk, last, step = base + 63, base, -1 end
  while (pk - last) * step <= 0 do
    local digit = pk % 10
    local t = (pk - digit) / 10
    local prefix = tens_text(t)
    local stop = desc and math.max(0, digit - (pk - last)) or math.min(9, digit + last - pk)
    for d = digit, stop, step do
      n = n + 1
      out[n] = prefix .. ID_DIGITS[d]
    end
    pk = pk + stop - digit + step
  end
end

-- Append the pks of a block member to `out` (decimal text), ascending (`desc`:
-- descending), those not above `after` (a number; nil: none) skipped.  Returns the
-- block number, or nil for a member of no valid form (nothing appended).
local function id_decode(member, out, desc, after)
  local block = #member > 8 and tonumber(string.sub(member, 9))
  if not block or pk_text(block) ~= string.sub(member, 9) then return nil end
  local base, n = block * 64, #out
  if not after and string.sub(member, 1, 8) == ID_FULL then
    id_run(base, out, n, desc)
    return block
  end
  local tens, prefix = -1, ''
  local first, last, step, from, to = 1, 8, 1, 0, 7
  if desc then first, last, step, from, to = 8, 1, -1, 7, 0 end
  for j = first, last, step do
    local c = string.byte(member, j)
    if c ~= 0 then
      local low = base + (j - 1) * 8
      for b = from, to, step do
        local pk = low + b
        if (c == 255 or bit.band(c, ID_FLAGS[b + 1]) ~= 0) and (not after or pk > after) then
          local digit = pk % 10
          local t = (pk - digit) / 10
          if t ~= tens then
            tens = t
            prefix = tens_text(t)
          end
          n = n + 1
          out[n] = prefix .. ID_DIGITS[digit]
        end
      end
    end
  end
  return block
end

-- Every pk of the ids zset, in order, as decimal text.
local function all_ids(ids_key)
  local out = {}
  local members = redis.call('ZRANGE', ids_key, 0, -1)
  for i = 1, #members do id_decode(members[i], out) end
  return out
end

-- A walk over the ids in order: returns a function that gives the next pks (at least
-- one, until none is left: then an empty table), ascending from above `after` (a
-- number, or nil) or descending from the top.  Each step reads up to 16 blocks.
local function ids_walk(ids_key, desc, after)
  local bound = desc and '+inf' or (after and pk_text(math.floor(after / 64)) or '-inf')
  return function()
    local out = {}
    while #out == 0 do
      local members
      if desc then
        members = redis.call('ZREVRANGEBYSCORE', ids_key, bound, '-inf', 'LIMIT', 0, 16)
      else
        members = redis.call('ZRANGEBYSCORE', ids_key, bound, '+inf', 'LIMIT', 0, 16)
      end
      if #members == 0 then return out end
      local block
      for i = 1, #members do block = id_decode(members[i], out, desc, after) end
      bound = '(' .. (block and pk_text(block) or redis.call('ZSCORE', ids_key, members[#members]))
    end
    return out
  end
end

-- Byte order of two strings (-1, 0, 1).  Lua's own '<' on strings follows the
-- server's collation locale, which need not be byte order.
local function compare_bytes(a, b)
  if a == b then return 0 end
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y and -1 or 1 end
  end
  return #a < #b and -1 or 1
end

-- Lua's unpack() cannot spread more than a few thousand values into one call.
local CHUNK = 4000

local function chunked_call(cmd, key, list)
  local out = {}
  for i = 1, #list, CHUNK do
    local part = redis.call(cmd, key, unpack(list, i, math.min(i + CHUNK - 1, #list)))
    for j = 1, #part do out[#out + 1] = part[j] end
  end
  return out
end

local function chunked_write(cmd, key, list)
  for i = 1, #list, CHUNK do
    redis.call(cmd, key, unpack(list, i, math.min(i + CHUNK - 1, #list)))
  end
end

-- A stored value as scripts receive it: kind 'n' is irNull (msgpack false), 'v' a value.
local function stored_value(kind, value)
  if kind == 'n' then return false end
  return value
end

-- Whether a record's actual value is what the client believed ('a' = absent).
local function matches(actual, kind, believed)
  if kind == 'a' then return actual == nil end
  if kind == 'n' then return actual == false end
  return actual == believed
end

-- Records are msgpack arrays: the stored values in the writing model's FIELDS order,
-- then the tag of that field list.  The model's schemas hash maps every tag to its
-- field names (a msgpack array), so a record written by an earlier version of the
-- model is still read by name.  A tag the hash lacks fails the script (every script
-- reads records before its first write, so nothing is written).
local known_schemas = {}  -- tag -> field names
local own_schemas = {}  -- tag -> packed field names, of the writing models (unpacked when needed)

-- A Redis function's library keeps its top-level locals between calls (an EVAL script
-- starts afresh): the callback calls this first (see scripts/__init__.py).
local function reset_lib_state()
  known_schemas, own_schemas = {}, {}
end

local function schema_names(schemas_key, tag)
  local name = tostring(tag)
  local names = known_schemas[name]
  if names == nil then
    local packed = own_schemas[name] or redis.call('HGET', schemas_key, name)
    if not packed then error('IR_UNKNOWN_SCHEMA ' .. name .. ' ') end
    names = cmsgpack.unpack(packed)
    known_schemas[name] = names
  end
  return names
end

-- Make the writing model's own field list known under its tag (a string); the
-- script stores it (register_schema) once its checks passed, before its first write.
-- It is unpacked only if the script reads by name (an insert never does).
local function know_schema(tag, packed_names)
  own_schemas[tag] = packed_names
end

local function register_schema(schemas_key, tag, packed_names)
  redis.call('HSETNX', schemas_key, tag, packed_names)
end

-- A stored record: a table field name -> stored value, its raw values, and its tag.
local function read_record(schemas_key, stored)
  local ok, values = pcall(cmsgpack.unpack, stored)
  if not ok or type(values) ~= 'table' or #values == 0 or type(values[#values]) ~= 'number' then
    error('IR_CORRUPT_RECORD ')  -- not our data: fails the script before its first write
  end
  local n = #values
  local names = schema_names(schemas_key, values[n])
  local record = {}
  for i = 1, n - 1 do
    local name = names[i]
    if name then record[name] = values[i] end
  end
  return record, values, tostring(values[n])
end

-- A digest of some fields of a stored record (entries.record_digest makes the same in
-- Python): per name 'a' (absent), 'n' (irNull) or 'v' <length> ':' <bytes>,
-- concatenated, as SHA1 hex.  Clients compare it with what they last read, so an
-- optimistic check costs no memory per object on the server.
local function record_digest(record, names)
  local parts = {}
  for i, name in ipairs(names) do
    local v = record[name]
    if v == nil then
      parts[i] = 'a'
    elseif v == false then
      parts[i] = 'n'
    else
      v = tostring(v)
      parts[i] = 'v' .. #v .. ':' .. v
    end
  end
  return redis.sha1hex(table.concat(parts))
end

-- Unique values, checked before the first write: the set of a claimed value (an index
-- group whose unique flag is 1; irNull never claims) may hold no object but the
-- claimant, or one this call moves out of it (leaving: set key number -> {pk = true},
-- or nil), and two objects of the call may not claim one value.
-- objects: {_, pk ('' = new), _, _, index groups}...  Returns the object number and the
-- field of the first clash, or nil.  `gone(o, member)`, when given (TTL models), says
-- whether a holder has expired: then it holds nothing.
local function unique_clash(objects, leaving, gone)
  local claims = {}
  for o, ob in ipairs(objects) do
    for _, ix in ipairs(ob[5]) do
      if type(ix) == 'table' and ix[6] == 1 then
        local number = ix[5]
        if claims[number] and claims[number] ~= o then return o, ix[1] end
        claims[number] = o
        local n = redis.call('SCARD', KEYS[number])
        if n > 0 and gone then
          for _, member in ipairs(redis.call('SMEMBERS', KEYS[number])) do
            if member ~= ob[2] and not (leaving and leaving[number] and leaving[number][member])
                and not gone(o, member) then
              return o, ix[1]
            end
          end
        elseif n > 1 then
          return o, ix[1]
        elseif n == 1 then
          local member = redis.call('SRANDMEMBER', KEYS[number])
          if member ~= ob[2] and not (leaving and leaving[number] and leaving[number][member]) then
            return o, ix[1]
          end
        end
      end
    end
  end
  return nil
end

-- Tell client-side caches that an object changed (see save.lua): its stamp key is SET
-- and DELeted, so it never exists between scripts.
local function touch_stamp(key)
  redis.call('SET', key, '1')
  redis.call('DEL', key)
end

-- Write one object's record: mode 'F' stores the packed record given, 'P' the stored
-- values (a table, of the writing model's layout; where: field name -> position) with
-- the changed fields of the payload ({field, kind, stored value}...) put in.
local function write_record(objs_key, ids_key, pk, mode, payload, values, where)
  if mode == 'F' then
    redis.call('HSET', objs_key, pk, payload)
  else
    for _, p in ipairs(payload) do values[where[p[1]]] = stored_value(p[2], p[3]) end
    redis.call('HSET', objs_key, pk, cmsgpack.pack(values))
  end
  id_add(ids_key, pk)  -- an update too: a reindex (a save of every object) mends the ids
end

-- Move one object's index entries as its index groups say (see save.lua's header);
-- `after(group, moved, compact)`, if given, runs once a group's value sets are written
-- (the text dictionaries' upkeep: text_upkeep in textindex.lua).
local function write_entries(pk, groups, after)
  local padded  -- the sorted-set member, made when a zset needs it
  for _, ix in ipairs(groups) do
    if type(ix) == 'number' then  -- a plain index of a new object
      redis.call('SADD', KEYS[ix], pk)
    elseif #ix <= 6 then  -- a plain text index of a new object (see save.lua's header)
      redis.call('SADD', KEYS[ix[2]], pk)
      if after then after(ix, false, true) end
    else
      if padded == nil and (ix[7] ~= 0 or ix[9] ~= 0) then padded = pad_pk(pk) end
      local moved = ix[4] ~= 0 and ix[4] ~= ix[5]
      if moved then redis.call('SREM', KEYS[ix[4]], pk) end
      redis.call('SADD', KEYS[ix[5]], pk)  -- even when unchanged: a reindex relies on it
      if after then after(ix, moved) end
      if ix[7] ~= 0 then
        if ix[8] == '' then
          redis.call('ZREM', KEYS[ix[7]], padded)
        else
          redis.call('ZADD', KEYS[ix[7]], ix[8], padded)
        end
      end
      if ix[9] ~= 0 then
        if ix[10] == 1 and not (ix[12] == 1 and ix[11] == ix[13]) then
          redis.call('ZREM', KEYS[ix[9]], ix[11] .. padded)
        end
        if ix[12] == 1 then redis.call('ZADD', KEYS[ix[9]], 0, ix[13] .. padded) end
      end
    end
  end
end

-- Expiry (TTL models, see expiry.py): the expected generation a script is sent may name
-- the model's expiry zset, '<gen>+<key #>' (keep it up to date, filter by it) or
-- '<gen>!<key #>' (a sweep).  Returns the generation, the zset's key (nil: the model
-- has no TTL) and whether the call is a sweep.
local function expected_gen(arg)
  local g, mode, n = string.match(arg, '^(%d+)([+!])(%d+)$')
  if not g then return arg, nil, false end
  return g, KEYS[tonumber(n)], mode == '!'
end

-- Whether an expiry score (a ZSCORE / ZMSCORE reply item) is at or before `now`.
local function is_expired(score, now)
  return score and tonumber(score) <= now or false
end
