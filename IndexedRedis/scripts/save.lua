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
--     layout digest, layout (field, letters...), expiry zset # (TTL models only, see
--     expiry.py)}...  (layouts: see textindex.lua)
--   objects: {model number, pk ('' = new), mode, payload, index groups, stamp #, expected,
--     expiry (TTL models only: ms from now, 0 none, -1 keep the stored one)}...
--     expected: '' (no check), or what the stored record must be for anything to be
--       written (ifUnchanged): 'absent', or the record_digest (lib.lua) of the writing
--       model's fields; otherwise the reply is {5, object number}.
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
--     set), just the new set # (a number) instead of the group; and for a plain text
--     index, {field, new set #, dictionary #, text} (then folded dictionary #, folded
--     member, when the value has a folded member).
--   A kind says what a value is: 'v' the bytes given, 'n' irNull (stored as msgpack
--   false), 'a' absent from the record (then the old set # is 0).  Sorted-set members
--   are the zero-padded pk (after the escaped text and NUL NUL in a lex zset).
-- An object that expired but was not swept yet is absent to a partial save (reply 3)
-- and to ifUnchanged (reply 5), and re-created by a whole save (written over its
-- record, beliefs as for an update).
-- Reply: {1, pk... (then, with a TTL model, 1 if expired objects wait for a sweep, else
--   0)} | {0, generation, model number} | {2, object number, record}
--   | {3, object number} (a partial update found no record)
--   | {4, object number, field} (a UNIQUE_FIELDS value is taken; nothing written)
--   | {5, object number} (an ifUnchanged object's stored record changed or is gone).

local request = cmsgpack.unpack(ARGV[1])
local models, objects = request[1], request[2]

for m, model in ipairs(models) do
  local gen = current_gen(KEYS[model[2]])
  if gen ~= model[1] then return {0, gen, m} end
end
for _, model in ipairs(models) do know_schema(model[7], model[8]) end
-- Expiry (TTL models: model[13] is the expiry zset's key #, ob[8] the object's expiry,
-- see expiry.py): read the server's clock once.
local now
for _, model in ipairs(models) do if (model[13] or 0) ~= 0 then now = server_ms() break end end
local revived = {}  -- objects whose stored record had expired (not swept yet)
local function expired_pk(m, pk)
  local exp = models[m][13] or 0
  return exp ~= 0 and is_expired(redis.call('ZSCORE', KEYS[exp], pk), now)
end
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
    local expected = ob[7] or ''  -- ifUnchanged: what must be stored ('' no check)
    if stored and now and expired_pk(ob[1], pk) then
      -- expired, not swept yet: absent to a partial save and to ifUnchanged; a whole
      -- save re-creates the object over the stored record (its index entries stay exact)
      if ob[3] == 'P' then return {3, o} end
      if expected ~= '' and expected ~= 'absent' then return {5, o} end
      expected = ''
      revived[o] = true
    end
    if expected ~= '' and not stored and expected ~= 'absent' then return {5, o} end
    if stored then
      local record, values, tag = read_record(KEYS[model[6]], stored)
      if expected ~= '' and (expected == 'absent'
                             or record_digest(record, schema_names(nil, model[7])) ~= expected) then
        return {5, o}
      end
      if ob[3] == 'P' and tag ~= model[7] then return {2, o, stored} end
      for _, ix in ipairs(ob[5]) do
        if not matches(record[ix[1]], ix[2], ix[3]) then return {2, o, stored} end
      end
      existing[o] = values
    elseif ob[3] == 'P' then
      return {3, o}
    else
      for _, ix in ipairs(ob[5]) do ix[4], ix[10] = 0, 0 end
    end
  end
end

local clash, field = unique_clash(objects, nil, now and function(o, member)
  return expired_pk(objects[o][1], member)
end)
if clash then return {4, clash, field} end

for _, model in ipairs(models) do register_schema(KEYS[model[6]], model[7], model[8]) end
local layouts = {}  -- per model: field -> the indexes kept (textindex.lua)
for m, model in ipairs(models) do
  layouts[m] = layout_sync(KEYS[model[10]], KEYS[model[4]], model[11], model[12])
  note_write(KEYS[model[10]], layouts[m])
end

local upkeeps = {}  -- per model: the dictionaries' upkeep for write_entries
for m, model in ipairs(models) do upkeeps[m] = text_upkeep(layouts[m], KEYS[model[10]]) end

local pks = {1}
for o, ob in ipairs(objects) do
  local model = models[ob[1]]
  local objs_key, counter = KEYS[model[3]], KEYS[model[5]]
  local pk = ob[2]
  if pk == '' then
    pk = pk_text(redis.call('INCR', counter))
  elseif not existing[o] then
    -- Inserting under a chosen pk: keep the counter ahead of it.
    if tonumber(pk) > tonumber(redis.call('GET', counter) or '0') then
      redis.call('SET', counter, pk)
    end
  end
  write_record(objs_key, KEYS[model[4]], pk, ob[3], ob[4], existing[o], ob[3] == 'P' and where_of(ob[1]))
  if ob[6] ~= 0 and stamping[ob[1]] then touch_stamp(KEYS[ob[6]]) end
  write_entries(pk, ob[5], upkeeps[ob[1]])
  if (model[13] or 0) ~= 0 then
    local ttl = ob[8]
    if ttl > 0 then
      redis.call('ZADD', KEYS[model[13]], now + ttl, pk)
    elseif ttl == 0 or revived[o] then
      redis.call('ZREM', KEYS[model[13]], pk)
    end
  end
  pks[o + 1] = pk
end
if now then  -- a TTL model's reply ends with whether expired objects wait for a sweep
  local waiting = 0
  for _, model in ipairs(models) do
    if (model[13] or 0) ~= 0 and redis.call('ZCOUNT', KEYS[model[13]], '-inf', now) > 0 then waiting = 1 end
  end
  pks[#pks + 1] = waiting
end
return pks
