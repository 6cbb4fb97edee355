-- Update some fields of many objects of one model (QuerySet.update) in one atomic
-- step, keeping every index exact.
-- The client read the matching records, worked out each object's new values (F
-- expressions included) and the index keys they move between, and sends them with a
-- digest of the fields they were worked out from (the query's fields, the fields the
-- expressions read, the fields changed).  Each record is read here: when those fields
-- still hold what the client read, the object still matches the query and its new
-- values are right; otherwise nothing is written and the record is returned, for the
-- client to work that object out again.  An object deleted meanwhile is left out.
--
-- KEYS: 1 generation pointer, 2 objs hash, 3 ids zset, 4 schemas hash, 5 cache flag,
--   then the index keys and stamps, by number.
-- ARGV[1]: the request, msgpack: {expected generation ('<gen>+<expiry zset #>' for a TTL
--   model, see expiry.py), schema tag, field names (msgpack array), digest field names,
--   objects, layout hash #, layout digest, layout (field, letters...)}  (layouts and text
--   dictionaries: textindex.lua)
--   objects: {0, pk, mode, payload, index groups, stamp #, digest}...  (the layout of
--     save.lua's objects: mode 'P' payload {field, kind, stored value}... for the
--     changed fields, mode 'F' the whole record, sent for a stored record of another
--     schema; index groups as in save.lua, for the changed indexed fields.)
-- Reply: {1, objects updated} | {0, generation} | {2, object number, record}
--   | {4, object number, field} (a UNIQUE_FIELDS value is taken; nothing written).

local request = cmsgpack.unpack(ARGV[1])
local expected, exp_key = expected_gen(request[1])
local gen = current_gen(KEYS[1])
if gen ~= expected then return {0, gen} end
-- Expiry (TTL models): an object that expired (not swept yet) is gone, as if deleted.
local now = exp_key and server_ms()
local function expired_pk(pk) return exp_key ~= nil and is_expired(redis.call('ZSCORE', exp_key, pk), now) end
local tag, checked, objects = request[2], request[4], request[5]
know_schema(tag, request[3])

-- Check every object before the first write, so a refused call changes nothing.
local existing, live = {}, {}
local leaving = {}  -- set key number -> {pk = true}: the objects moving out of it
for o, ob in ipairs(objects) do
  local stored = redis.call('HGET', KEYS[2], ob[2])
  if stored and expired_pk(ob[2]) then stored = nil end
  if stored then
    local record, values, stored_tag = read_record(KEYS[4], stored)
    if record_digest(record, checked) ~= ob[7] or (ob[3] == 'P' and stored_tag ~= tag) then
      return {2, o, stored}
    end
    existing[o] = values
    live[#live + 1] = ob
    for _, ix in ipairs(ob[5]) do
      if ix[4] ~= 0 and ix[4] ~= ix[5] then
        leaving[ix[4]] = leaving[ix[4]] or {}
        leaving[ix[4]][ob[2]] = true
      end
    end
  else
    ob[5] = {}  -- gone: it claims nothing and moves nothing
  end
end

local clash, field = unique_clash(objects, leaving, exp_key and function(_, member) return expired_pk(member) end)
if clash then return {4, clash, field} end
if #live == 0 then return {1, 0} end

register_schema(KEYS[4], tag, request[3])
local layout_key = KEYS[request[6]]
local layout = layout_sync(layout_key, KEYS[3], request[7], request[8])
note_write(layout_key, layout)
local upkeep = text_upkeep(layout, layout_key)
local stamping = redis.call('EXISTS', KEYS[5]) == 1
local where = {}
for i, name in ipairs(schema_names(nil, tag)) do where[name] = i end
for o, ob in ipairs(objects) do
  if existing[o] then
    write_record(KEYS[2], KEYS[3], ob[2], ob[3], ob[4], existing[o], where)
    if stamping then touch_stamp(KEYS[ob[6]]) end
    write_entries(ob[2], ob[5], upkeep)
  end
end
return {1, #live}
