-- check: whether the entries of index keys are backed by the stored records, walking
-- each key with a cursor (SSCAN / ZSCAN) and at most `budget` entries per call.
-- Read-only.
--
-- KEYS: 1 generation pointer, 2 objs hash, 3 schemas hash, then the index keys
-- ARGV: 1 expected generation, 2 budget, then per key (in KEYS order from 4): mode,
--   field, cursor ('0' to start), expected size, n, then n stored values known to belong
--   in the key.  Modes: 'v' a value set, 'n' a null set, 'z' a score zset, 'x' a lex
--   zset, 'i' the ids zset (its entries are its pks: a stale one is reported by its
--   pk, a block member of no valid form as it is).  A key about to be started whose
--   size is the expected one (-1: unknown) holds nothing stale (the client checked that
--   every entry the records imply is there): it is not walked.
-- Reply: {1, per key: {cursor ('0' done, or where to go on), entries seen, size, the
--   key's type when it is not the mode's ('' else; 'later' when the budget ran out
--   before the key), {member, code, value...}}} | {0, generation}
-- Codes: 'm' no record has that pk; 'a' the record has no such field; 'u' the record
--   cannot be read; 'v' / 'n' the record's value (when not known to belong here), a
--   value / irNull; 'f' a member of no valid form; 'w' a lex member that is not the
--   record's (value: its text, or false).  (An ids entry's score is checked with its
--   record, by check_records.lua.)

local gen = current_gen(KEYS[1])
if gen ~= ARGV[1] then return {0, gen} end

local objs = KEYS[2]
local budget = tonumber(ARGV[2])
local MAX_SCANS = 200    -- SSCAN / ZSCAN calls per script call, however sparse the keys
local scans = 0

local positions = {}     -- tag .. '\0' .. field -> position in records of that tag
-- A record's stored value of a field: 'ok', value | 'a' (no such field) | 'u' (unreadable).
local function field_of(blob, field)
  local ok, values = pcall(cmsgpack.unpack, blob)
  if not ok or type(values) ~= 'table' or #values < 1 then return 'u' end
  local tag = values[#values]
  local cached = positions[tostring(tag) .. '\0' .. field]
  if cached == nil then
    local found, names = pcall(schema_names, KEYS[3], tag)
    if not found or #names ~= #values - 1 then return 'u' end
    cached = false
    for i = 1, #names do if names[i] == field then cached = i end end
    positions[tostring(tag) .. '\0' .. field] = cached
  end
  if cached == false then return 'a' end
  if #values - 1 < cached then return 'u' end
  return 'ok', values[cached]
end

local function lex_of(text, padded)
  return (string.gsub(text, '%z', '\0\1')) .. '\0\0' .. padded
end

local function padded_pk(member)
  if #member ~= PK_DIGITS or string.find(member, '%D') then return nil end
  return unpad_pk(member)
end

local results = {}
local pos = 3
for k = 4, #KEYS do
  local key = KEYS[k]
  local mode, field, cursor, expected = ARGV[pos], ARGV[pos + 1], ARGV[pos + 2], tonumber(ARGV[pos + 3])
  local n = tonumber(ARGV[pos + 4])
  local known = {}
  for i = 1, n do known[ARGV[pos + 4 + i]] = true end
  pos = pos + 5 + n
  local found = {}
  local function report(member, code, value)
    found[#found + 1] = member
    found[#found + 1] = code
    found[#found + 1] = value or false
  end
  local seen, size, status = 0, 0, ''
  local kind = redis.call('TYPE', key)['ok']
  local want = (mode == 'v' or mode == 'n') and 'set' or 'zset'
  if budget <= 0 or scans >= MAX_SCANS then
    status = 'later'
  elseif kind == 'none' then
    cursor = '0'
  elseif kind ~= want then
    status, cursor = kind, '0'
  else
    size = redis.call(want == 'set' and 'SCARD' or 'ZCARD', key)
    if cursor == '0' and size == expected then cursor = 'skip' end
    while cursor ~= 'skip' do
      scans = scans + 1
      local reply = redis.call(want == 'set' and 'SSCAN' or 'ZSCAN', key, cursor, 'COUNT', math.min(budget, 500))
      cursor = reply[1]
      local items = reply[2]
      if want == 'set' then
        seen = seen + #items
        budget = budget - #items
        local blobs = #items > 0 and chunked_call('HMGET', objs, items) or {}
        for i = 1, #items do
          local member = items[i]
          if not blobs[i] then
            report(member, 'm')
          else
            local state, value = field_of(blobs[i], field)
            if state ~= 'ok' then
              report(member, state)
            elseif mode == 'n' then
              if value ~= false then report(member, 'v', value) end
            elseif value == false then
              report(member, 'n')
            elseif not known[value] then
              report(member, 'v', value)
            end
          end
        end
      else
        seen = seen + #items / 2
        budget = budget - #items / 2
        for i = 1, #items, 2 do
          local member, score = items[i], items[i + 1]
          if mode == 'i' then
            local pks = {}
            if not id_decode(member, pks) or tonumber(score) ~= tonumber(string.sub(member, 9)) then
              report(member, 'f')
            else
              seen = seen + #pks - 1
              budget = budget - #pks + 1
              for _, pk in ipairs(pks) do
                if redis.call('HEXISTS', objs, pk) == 0 then report(pk, 'm') end
              end
            end
          elseif mode == 'z' then
            local pk = padded_pk(member)
            if not pk then
              report(member, 'f')
            elseif redis.call('HEXISTS', objs, pk) == 0 then
              report(member, 'm')
            end
          else
            local pk = #member >= PK_DIGITS + 2 and string.sub(member, -PK_DIGITS - 2, -PK_DIGITS - 1) == '\0\0'
              and padded_pk(string.sub(member, -PK_DIGITS))
            if not pk then
              report(member, 'f')
            else
              local blob = redis.call('HGET', objs, pk)
              if not blob then
                report(member, 'm')
              else
                local state, value = field_of(blob, field)
                if state ~= 'ok' then
                  report(member, state)
                elseif type(value) ~= 'string' or lex_of(value, string.sub(member, -PK_DIGITS)) ~= member then
                  report(member, 'w', value)
                end
              end
            end
          end
        end
      end
      if cursor == '0' or budget <= 0 or scans >= MAX_SCANS then break end
    end
    if cursor == 'skip' then cursor = '0' end
  end
  results[#results + 1] = {cursor, seen, size, status, found}
end
return {1, results}
