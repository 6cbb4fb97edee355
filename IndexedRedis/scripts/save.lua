-- Insert or update objects, of one model or several linked ones, in one atomic step,
-- keeping every index exact.
-- The stored record is read here, on the server: an update changes only the index
-- entries of the values actually stored.  The client names the old index keys it
-- believes in (so that every key is declared); if a belief is wrong, nothing is
-- written and the real record is returned for the client to retry with.
--
-- KEYS: every key, referenced by number from the request.
-- ARGV[1]: the request, msgpack: {models, objects}
--   models: {expected generation, generation pointer #, objs hash #, ids zset #, pk counter #,
--     schemas hash #, schema tag, field names (msgpack array), cache flag #, layout hash #,
--     layout digest, layout (field, letters...)}...  (layouts: see textindex.lua)
--   objects: {model number, pk ('' = new), mode, payload, index groups, stamp #}...
--     stamp #: the object's stamp key (0 for an object without a pk yet: no client
--       can have cached it).  While the model's cache flag exists (some process keeps a
--       client-side cache of it), the stamp is SET and DELeted, which tells those
--       caches (tracking the model's key prefix) exactly which pk changed.
--     mode 'F': payload is the whole record (see lib.lua);
--     mode 'P': payload is {field, kind, stored value}... for the changed fields only;
--       a stored record of another schema is refused (reply 2): the client sends it whole.
--     index group: {field, kind, believed stored value, old set #, new set #, unique (1/0),
--       score zset # (0: none), new score ('' = not in the zset), lex zset # (0: none),
--       old lex flag (1/0), old text, new lex flag, new text, dictionary # (0: none),
--       folded dictionary #, old folded member, new dict flag (1/0), new text, new folded
--       member}  (a folded member '' means none; the old dictionary value is the believed
--       stored value.  A value enters the dictionaries when its set gains its first
--       member, and leaves them when its set empties.)
--     An object saved without a pk may give, for a plain index (not unique, no sorted
--     set), just the new set # (a number) instead of the group.
--   A kind says what a value is: 'v' the bytes given, 'n' irNull (stored as msgpack
--   false), 'a' absent from the record (then the old set # is 0).  Sorted-set members
--   are the zero-padded pk (after the escaped text and NUL NUL in a lex zset).
-- Reply: {1, pk...} | {0, generation, model number} | {2, object number, record}
--   | {3, object number} (a partial update found no record)
--   | {4, object number, field} (a UNIQUE_FIELDS value is taken; nothing written).

local request = cmsgpack.unpack(ARGV[1])
local models, objects = request[1], request[2]

for m, model in ipairs(models) do
  local gen = current_gen(KEYS[model[2]])
  if gen ~= model[1] then return {0, gen, m} end
end
for _, model in ipairs(models) do know_schema(model[7], model[8]) end
local stamping = {}  -- per model: whether some client caches it (read here, never trusted from the client)
for m, model in ipairs(models) do stamping[m] = redis.call('EXISTS', KEYS[model[9]]) == 1 end
local positions = {}  -- per model: field name -> position in its records, once needed
local function where_of(m)
  local where = positions[m]
  if where == nil then
    where = {}
    for i, name in ipairs(schema_names(nil, models[m][7])) do where[name] = i end
    positions[m] = where
  end
  return where
end

-- Check every belief before the first write, so a refused call changes nothing.
local existing = {}
for o, ob in ipairs(objects) do
  local pk = ob[2]
  if pk ~= '' then
    local model = models[ob[1]]
    local stored = redis.call('HGET', KEYS[model[3]], pk)
    if stored then
      local record, values, tag = read_record(KEYS[model[6]], stored)
      if ob[3] == 'P' and tag ~= model[7] then return {2, o, stored} end
      for _, ix in ipairs(ob[5]) do
        if not matches(record[ix[1]], ix[2], ix[3]) then return {2, o, stored} end
      end
      existing[o] = values
    elseif ob[3] == 'P' then
      return {3, o}
    else
      for _, ix in ipairs(ob[5]) do ix[4], ix[10], ix[2] = 0, 0, 'a' end
    end
  end
end

-- Unique values: the value's set may hold no other object, in Redis or in this call.
local claims = {}
for o, ob in ipairs(objects) do
  for _, ix in ipairs(ob[5]) do
    if type(ix) == 'table' and ix[6] == 1 then  -- sent only for values that are not irNull
      local key = KEYS[ix[5]]
      if claims[ix[5]] and claims[ix[5]] ~= o then return {4, o, ix[1]} end
      claims[ix[5]] = o
      local n = redis.call('SCARD', key)
      if n > 1 or (n == 1 and (ob[2] == '' or redis.call('SISMEMBER', key, ob[2]) == 0)) then
        return {4, o, ix[1]}
      end
    end
  end
end

for _, model in ipairs(models) do register_schema(KEYS[model[6]], model[7], model[8]) end
local layouts = {}  -- per model: field -> the indexes kept (textindex.lua)
for m, model in ipairs(models) do layouts[m] = layout_sync(KEYS[model[10]], KEYS[model[4]], model[11], model[12]) end

local pks = {1}
for o, ob in ipairs(objects) do
  local model = models[ob[1]]
  local objs_key, counter = KEYS[model[3]], KEYS[model[5]]
  local pk = ob[2]
  if pk == '' then
    pk = tostring(redis.call('INCR', counter))
  elseif not existing[o] then
    -- Inserting under a chosen pk: keep the counter ahead of it.
    if tonumber(pk) > tonumber(redis.call('GET', counter) or '0') then
      redis.call('SET', counter, pk)
    end
  end
  if ob[3] == 'F' then
    redis.call('HSET', objs_key, pk, ob[4])
  else
    local values, where = existing[o], where_of(ob[1])
    for _, p in ipairs(ob[4]) do values[where[p[1]]] = stored_value(p[2], p[3]) end
    redis.call('HSET', objs_key, pk, cmsgpack.pack(values))
  end
  redis.call('ZADD', KEYS[model[4]], pk, pk)
  if ob[6] ~= 0 and stamping[ob[1]] then
    redis.call('SET', KEYS[ob[6]], '1')
    redis.call('DEL', KEYS[ob[6]])
  end
  local padded  -- the sorted-set member, made when a zset needs it
  for _, ix in ipairs(ob[5]) do
    if type(ix) == 'number' then  -- a plain index of a new object
      redis.call('SADD', KEYS[ix], pk)
    else
      if padded == nil and (ix[7] ~= 0 or ix[9] ~= 0) then padded = string.format('%012d', tonumber(pk)) end
      local dict = ix[14] ~= nil and ix[14] ~= 0 and keeps_dict(layouts[ob[1]], ix[1])
      local moved = ix[4] ~= 0 and ix[4] ~= ix[5]
      if moved then redis.call('SREM', KEYS[ix[4]], pk) end
      redis.call('SADD', KEYS[ix[5]], pk)  -- even when unchanged: a reindex relies on it
      if dict then
        local layout_key = KEYS[model[10]]
        if moved and ix[2] == 'v' and redis.call('SCARD', KEYS[ix[4]]) == 0 then
          dict_leave(layout_key, ix[1], KEYS[ix[14]], KEYS[ix[15]], ix[3], ix[16])
        end
        -- ZADD adds the value only when its set had no member before (then the dictionary
        -- lacked it); otherwise it changes nothing, and the version stays.
        if ix[17] == 1 and redis.call('ZADD', KEYS[ix[14]], 0, ix[18]) == 1 then
          if ix[19] ~= '' then redis.call('ZADD', KEYS[ix[15]], 0, ix[19]) end
          dict_bump(layout_key, ix[1])
        end
      end
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
  pks[o + 1] = pk
end
return pks
