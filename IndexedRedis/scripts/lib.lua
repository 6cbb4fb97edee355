-- Helpers shared by every IndexedRedis script; prepended to each script's source.
-- Replies start with a status: 1 done, 0 stale generation (then the current one),
-- 2 a belief about stored values was wrong (then the object number and its record),
-- 3 a partial update found no stored record (then the object number).

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
