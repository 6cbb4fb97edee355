-- Insert or update objects, of one model or several linked ones, in one atomic step,
-- keeping every index exact.
-- The stored record is read here, on the server: an update changes only the index
-- entries of the values actually stored.  The client names the old index keys it
-- believes in (so that every key is declared); if a belief is wrong, nothing is
-- written and the real record is returned for the client to retry with.
--
-- KEYS: every key, referenced by number from ARGV.
-- ARGV: model count M, then per model: expected generation and the key numbers of its
--   generation pointer, objs hash, ids set and pk counter; then the object count, then
--   per object: model number, pk ('' = new), mode ('F' whole record | 'P' changed
--   fields only),
--   F: the record (msgpack map)      P: n, then n (field, kind, stored value) triples,
--   m, then m index groups of 13: field, kind, believed stored value, old set key
--   number, new set key number, unique ('1'/'0'), score zset key number (0: none),
--   new score ('' = leave the zset), lex zset key number (0: none), old lex flag and
--   text, new lex flag and text (flag '1' when the value has a lex entry).
--   A kind says what a value is: 'v' the bytes given, 'n' irNull (stored as msgpack
--   false), 'a' absent from the record (then the old key number is 0).
--   Sorted-set members are the zero-padded pk (after '<text>\0' in a lex zset).
-- Reply: {1, pk...} | {0, generation, model number} | {2, object number, record}
--   | {3, object number} (a partial update found no record)
--   | {4, object number, field} (a UNIQUE_FIELDS value is taken; nothing written).

local nmodels = tonumber(ARGV[1])
local models = {}
local pos = 2
for m = 1, nmodels do
  local model = {gen = ARGV[pos], ptr = KEYS[tonumber(ARGV[pos + 1])], objs = KEYS[tonumber(ARGV[pos + 2])],
                 ids = KEYS[tonumber(ARGV[pos + 3])], pk = KEYS[tonumber(ARGV[pos + 4])]}
  local gen = current_gen(model.ptr)
  if gen ~= model.gen then return {0, gen, m} end
  models[m] = model
  pos = pos + 5
end

local count = tonumber(ARGV[pos])
pos = pos + 1
local objects = {}
for o = 1, count do
  local ob = {model = models[tonumber(ARGV[pos])], pk = ARGV[pos + 1], mode = ARGV[pos + 2]}
  pos = pos + 3
  if ob.mode == 'F' then
    ob.record = ARGV[pos]
    pos = pos + 1
  else
    local n = tonumber(ARGV[pos])
    pos = pos + 1
    ob.pairs = {}
    for i = 1, n do
      ob.pairs[i] = {ARGV[pos], stored_value(ARGV[pos + 1], ARGV[pos + 2])}
      pos = pos + 3
    end
  end
  local m = tonumber(ARGV[pos])
  pos = pos + 1
  ob.index = {}
  for i = 1, m do
    ob.index[i] = {field = ARGV[pos], kind = ARGV[pos + 1], believed = ARGV[pos + 2],
                   old = tonumber(ARGV[pos + 3]), new = tonumber(ARGV[pos + 4]), unique = ARGV[pos + 5],
                   z = tonumber(ARGV[pos + 6]), score = ARGV[pos + 7], x = tonumber(ARGV[pos + 8]),
                   oldlex = ARGV[pos + 9] == '1' and ARGV[pos + 10] or nil,
                   newlex = ARGV[pos + 11] == '1' and ARGV[pos + 12] or nil}
    pos = pos + 13
  end
  objects[o] = ob
end

-- Check every belief before the first write, so a refused call changes nothing.
for o = 1, count do
  local ob = objects[o]
  if ob.pk ~= '' then
    local stored = redis.call('HGET', ob.model.objs, ob.pk)
    if stored then
      local record = cmsgpack.unpack(stored)
      for _, ix in ipairs(ob.index) do
        if not matches(record[ix.field], ix.kind, ix.believed) then return {2, o, stored} end
      end
      ob.existing = record
    elseif ob.mode == 'P' then
      return {3, o}
    else
      for _, ix in ipairs(ob.index) do ix.old, ix.oldlex = 0, nil end
    end
  end
end

-- Unique values: the value's set may hold no other object, in Redis or in this call.
local claims = {}
for o = 1, count do
  local ob = objects[o]
  for _, ix in ipairs(ob.index) do
    if ix.unique == '1' then  -- sent only for values that are not irNull
      local key = KEYS[ix.new]
      if claims[ix.new] and claims[ix.new] ~= o then return {4, o, ix.field} end
      claims[ix.new] = o
      local n = redis.call('SCARD', key)
      if n > 1 or (n == 1 and (ob.pk == '' or redis.call('SISMEMBER', key, ob.pk) == 0)) then
        return {4, o, ix.field}
      end
    end
  end
end

local pks = {1}
for o = 1, count do
  local ob = objects[o]
  local model = ob.model
  local pk = ob.pk
  if pk == '' then
    pk = tostring(redis.call('INCR', model.pk))
  elseif not ob.existing then
    -- Inserting under a chosen pk: keep the counter ahead of it.
    if tonumber(pk) > tonumber(redis.call('GET', model.pk) or '0') then
      redis.call('SET', model.pk, pk)
    end
  end
  if ob.mode == 'F' then
    redis.call('HSET', model.objs, pk, ob.record)
  else
    local record = ob.existing
    for _, p in ipairs(ob.pairs) do record[p[1]] = p[2] end
    redis.call('HSET', model.objs, pk, cmsgpack.pack(record))
  end
  redis.call('ZADD', model.ids, pk, pk)
  local padded = string.format('%012d', tonumber(pk))
  for _, ix in ipairs(ob.index) do
    if ix.old ~= 0 and ix.old ~= ix.new then redis.call('SREM', KEYS[ix.old], pk) end
    redis.call('SADD', KEYS[ix.new], pk)  -- even when unchanged: a reindex relies on it
    if ix.z ~= 0 then
      if ix.score == '' then
        redis.call('ZREM', KEYS[ix.z], padded)
      else
        redis.call('ZADD', KEYS[ix.z], ix.score, padded)
      end
    end
    if ix.x ~= 0 then
      if ix.oldlex and ix.oldlex ~= ix.newlex then
        redis.call('ZREM', KEYS[ix.x], ix.oldlex .. '\0' .. padded)
      end
      if ix.newlex then redis.call('ZADD', KEYS[ix.x], 0, ix.newlex .. '\0' .. padded) end
    end
  end
  pks[o + 1] = pk
end
return pks
