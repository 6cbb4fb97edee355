-- The query engine: find the matching objects and fetch them in one step.
--
-- The smallest positive condition drives: its members are read, and the other
-- conditions are checked for those members only (SMISMEMBER, ZMSCORE, or the stored
-- records for text ranges), so a query costs what its result and its smallest index
-- cost, not what the model holds.  Without a positive condition, or for a page of an
-- ordered result, the ordered index is walked in chunks until the page is full.
--
-- KEYS: 1 generation pointer, 2 objs hash, 3 ids zset (score = pk), 4 schemas hash,
--   then any keys the conditions and the order name, by number.
-- ARGV: 1 expected generation, 2 operation, then
--   'get' / 'has': the pks (those found and their records, as for 'records'; or
--   whether the first exists).
--   otherwise: order kind ('pk' | 'z' score zset | 'x' lex zset | 'd' text dictionary,
--   whose values come in an 'O' condition), order key number,
--   descending ('1'/'0'), null set key number (0: none), order field name, the key
--   number of a set of values with no place in the order (nan; 0: none), which are
--   ordered with the irNull values;
--   offset, limit (-1: no limit), after pk ('': none; pk order only), random number;
--   condition count, then per condition one of
--     'S' key                 members of a set (equality, isnull)
--     'U' n key...            members of any of n sets (in)
--     'Z' key min max         zset members scored in [min, max] (Redis score syntax)
--     'L' key min max field rawmin rawmax   lex zset members in [min, max] (Redis lex
--                             syntax); when this does not drive, the field's stored
--                             text is checked against rawmin / rawmax (same syntax)
--     'N' key                 members of the set are excluded
--     'R' / 'D' / 'O' ...     an index the query reads (checked as built), a text
--                             dictionary condition, a text order's values: see
--                             text_condition in textindex.lua (replies 20-22 there)
-- Operations: records / random -> the pks found (one msgpack array of numbers: cheaper
--   to send and parse than a reply item per pk), {their records} | pks -> {pks} |
--   count -> n | exists -> 0/1.  Reply {0, generation} when the generation moved.
--   (Concatenating the records too would cost more: Lua's table.concat of megabytes
--   takes longer than Redis needs to send them one by one.)
-- A whole result (no offset, limit or cursor) in pk order may come unsorted: the
-- client sorts it.

local gen = current_gen(KEYS[1])
if gen ~= ARGV[1] then return {0, gen} end

local objs_key, ids_key = KEYS[2], KEYS[3]
local op = ARGV[2]

-- The records of these pks as a 'records' reply (see the header).
local function records_reply(pks)
  if #pks == 0 then return {1, '', {}} end
  local blobs = chunked_call('HMGET', objs_key, pks)
  local found, records = {}, {}
  for i = 1, #pks do
    if blobs[i] then
      found[#found + 1] = tonumber(pks[i])
      records[#records + 1] = blobs[i]
    end
  end
  if #found == 0 then return {1, '', {}} end
  return {1, cmsgpack.pack(found), records}
end

if op == 'get' then
  local pks = {}
  for i = 3, #ARGV do pks[#pks + 1] = ARGV[i] end
  return records_reply(pks)
elseif op == 'has' then
  return {1, redis.call('HEXISTS', objs_key, ARGV[3])}
end

local function key_at(n)
  n = tonumber(n)
  if n == 0 then return nil end
  return KEYS[n]
end

local order_kind, order_key, desc = ARGV[3], key_at(ARGV[4]), ARGV[5] == '1'
local null_key, order_field, unordered_key = key_at(ARGV[6]), ARGV[7], key_at(ARGV[8])
local offset, limit, after, rnd = tonumber(ARGV[9]), tonumber(ARGV[10]), ARGV[11], tonumber(ARGV[12])
if op == 'exists' then offset, limit = 0, 1 end
local wanted = limit < 0 and math.huge or offset + limit

local positives, negatives = {}, {}
local pos = 14
for _ = 1, tonumber(ARGV[13]) do
  local t = ARGV[pos]
  if t == 'S' or t == 'N' then
    local c = {t = t, key = KEYS[tonumber(ARGV[pos + 1])]}
    if t == 'S' then positives[#positives + 1] = c else negatives[#negatives + 1] = c end
    pos = pos + 2
  elseif t == 'U' then
    local c = {t = t, keys = {}}
    for i = 1, tonumber(ARGV[pos + 1]) do c.keys[i] = KEYS[tonumber(ARGV[pos + 1 + i])] end
    positives[#positives + 1] = c
    pos = pos + 2 + #c.keys
  elseif t == 'R' or t == 'D' or t == 'O' then  -- text dictionaries, built indexes (textindex.lua)
    local c
    c, pos = text_condition(ARGV, pos)
    if c then positives[#positives + 1] = c end
  elseif t == 'Z' then
    positives[#positives + 1] = {t = t, key = KEYS[tonumber(ARGV[pos + 1])], min = ARGV[pos + 2],
                                 max = ARGV[pos + 3]}
    pos = pos + 4
  else -- 'L'
    positives[#positives + 1] = {t = t, key = KEYS[tonumber(ARGV[pos + 1])], min = ARGV[pos + 2],
                                 max = ARGV[pos + 3], field = ARGV[pos + 4], rawmin = ARGV[pos + 5],
                                 rawmax = ARGV[pos + 6]}
    pos = pos + 7
  end
end

local refused = text_verify(ids_key)
if refused then return refused end

local function padded(pk) return string.format('%012d', tonumber(pk)) end
local function unpadded(member) return tostring(tonumber(string.sub(member, -12))) end

local function size_of(c)
  if c.t == 'S' then return redis.call('SCARD', c.key) end
  if c.t == 'U' then
    local n = 0
    for _, key in ipairs(c.keys) do n = n + redis.call('SCARD', key) end
    return n
  end
  if c.t == 'Z' then return redis.call('ZCOUNT', c.key, c.min, c.max) end
  return redis.call('ZLEXCOUNT', c.key, c.min, c.max)
end

-- The members of any of many sets (SUNION of at most CHUNK keys at a time: Lua's
-- unpack() cannot spread more).
local function union_members(keys)
  if #keys == 0 then return {} end
  if #keys <= CHUNK then return redis.call('SUNION', unpack(keys)) end
  local seen, out = {}, {}
  for i = 1, #keys, CHUNK do
    for _, m in ipairs(redis.call('SUNION', unpack(keys, i, math.min(i + CHUNK - 1, #keys)))) do
      if not seen[m] then
        seen[m] = true
        out[#out + 1] = m
      end
    end
  end
  return out
end

-- Whether pks are in any of the sets `keys`: a function of a list of pks that returns
-- a flag per position.  With many sets, and fewer members in all than lookups to make,
-- the members are read once into a table instead of asking every set about every pk.
local function membership(keys)
  local total
  local found
  return function(pks)
    local flags = {}
    if found == nil and #keys > 8 then
      if total == nil then
        total = 0
        for _, key in ipairs(keys) do total = total + redis.call('SCARD', key) end
      end
      if total < #keys * #pks then
        found = {}
        for _, m in ipairs(union_members(keys)) do found[m] = true end
      end
    end
    if found then
      for i = 1, #pks do flags[i] = found[pks[i]] or false end
      return flags
    end
    for _, key in ipairs(keys) do
      local answers = chunked_call('SMISMEMBER', key, pks)
      for i = 1, #pks do if answers[i] == 1 then flags[i] = true end end
    end
    return flags
  end
end

local negative_keys = {}
for i, c in ipairs(negatives) do negative_keys[i] = c.key end
local in_negatives = membership(negative_keys)

-- Every pk, in pk order, but those of the negative conditions' sets.
local function all_but_negatives()
  local keys = {ids_key}
  local n = math.min(#negatives, CHUNK - 1)
  for i = 1, n do keys[#keys + 1] = negative_keys[i] end
  local rest = redis.call('ZDIFF', #keys, unpack(keys))
  if #negatives <= n then return rest end
  local more = {}
  for i = n + 1, #negative_keys do more[#more + 1] = negative_keys[i] end
  local excluded = {}
  for _, m in ipairs(union_members(more)) do excluded[m] = true end
  local out = {}
  for _, pk in ipairs(rest) do if not excluded[pk] then out[#out + 1] = pk end end
  return out
end

local function members_of(c)
  if c.t == 'S' then return redis.call('SMEMBERS', c.key) end
  if c.t == 'U' then return union_members(c.keys) end
  local raw
  if c.t == 'Z' then
    raw = redis.call('ZRANGEBYSCORE', c.key, c.min, c.max)
  else
    raw = redis.call('ZRANGEBYLEX', c.key, c.min, c.max)
  end
  for i = 1, #raw do raw[i] = unpadded(raw[i]) end
  return raw
end

-- Score bounds in Redis syntax: '(' excludes, '-inf' / '+inf' are open.
local function bound(text)
  local open = string.sub(text, 1, 1) == '('
  local body = open and string.sub(text, 2) or text
  local value = tonumber(body)
  if body == '-inf' then value = -math.huge elseif body == '+inf' or body == 'inf' then value = math.huge end
  return value, open
end

local function score_in(score, c)
  if not score then return false end
  score = tonumber(score)
  local lo, lo_open = bound(c.min)
  local hi, hi_open = bound(c.max)
  if score < lo or (lo_open and score == lo) then return false end
  if score > hi or (hi_open and score == hi) then return false end
  return true
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

-- Lex bounds: '-' / '+' are open, '[' includes, '(' excludes.
local function text_in(value, c)
  if type(value) ~= 'string' then return false end
  if c.rawmin ~= '-' then
    local d = compare_bytes(value, string.sub(c.rawmin, 2))
    if d < 0 or (d == 0 and string.sub(c.rawmin, 1, 1) == '(') then return false end
  end
  if c.rawmax ~= '+' then
    local d = compare_bytes(value, string.sub(c.rawmax, 2))
    if d > 0 or (d == 0 and string.sub(c.rawmax, 1, 1) == '(') then return false end
  end
  return true
end

local function stored_values(pks, field)
  local records = chunked_call('HMGET', objs_key, pks)
  local values = {}
  for i = 1, #pks do
    values[i] = records[i] and read_record(KEYS[4], records[i])[field] or nil
  end
  return values
end

-- The pks of a list that meet every condition but `skip` (already met by all of them).
local function keep(pks, skip)
  if #pks == 0 then return pks end
  local ok = {}
  for i = 1, #pks do ok[i] = true end
  local paddeds
  for _, c in ipairs(positives) do
    if c ~= skip then
      if c.t == 'S' then
        local flags = chunked_call('SMISMEMBER', c.key, pks)
        for i = 1, #pks do if flags[i] == 0 then ok[i] = false end end
      elseif c.t == 'U' then
        c.any = c.any or membership(c.keys)
        local any = c.any(pks)
        for i = 1, #pks do if not any[i] then ok[i] = false end end
      elseif c.t == 'Z' then
        if not paddeds then
          paddeds = {}
          for i = 1, #pks do paddeds[i] = padded(pks[i]) end
        end
        local scores = chunked_call('ZMSCORE', c.key, paddeds)
        for i = 1, #pks do if not score_in(scores[i], c) then ok[i] = false end end
      else
        local values = stored_values(pks, c.field)
        for i = 1, #pks do if not text_in(values[i], c) then ok[i] = false end end
      end
    end
  end
  if #negatives > 0 then
    local excluded = in_negatives(pks)
    for i = 1, #pks do if excluded[i] then ok[i] = false end end
  end
  local kept = {}
  for i = 1, #pks do if ok[i] then kept[#kept + 1] = pks[i] end end
  return kept
end

local driver
local driver_size = math.huge
for _, c in ipairs(positives) do
  local n = size_of(c)
  if n < driver_size then driver, driver_size = c, n end
end

-- Counting needs no order, and often no members at all.
if op == 'count' then
  if #negatives == 0 and #positives == 1 then return {1, driver_size} end
  if #positives == 0 then
    if #negatives == 0 then return {1, redis.call('ZCARD', ids_key)} end
    return {1, #all_but_negatives()}
  end
  return {1, #keep(members_of(driver), driver)}
end

local function sort_pks(pks, descending)
  local numbers = {}
  for i = 1, #pks do numbers[i] = tonumber(pks[i]) end
  if descending then table.sort(numbers, function(a, b) return a > b end) else table.sort(numbers) end
  for i = 1, #numbers do numbers[i] = tostring(numbers[i]) end
  return numbers
end

local CHUNK_WALK = 1000

-- Walk an ordered index chunk by chunk; `fetch(from)` returns the next chunk of pks
-- (and nil when done); kept pks are appended to `out` until it holds `wanted`.
local function walk(fetch, out)
  local from = 0
  while #out < wanted do
    local chunk = fetch(from)
    if not chunk or #chunk == 0 then return end
    from = from + #chunk
    local kept = keep(chunk, nil)
    for i = 1, #kept do
      out[#out + 1] = kept[i]
      if #out >= wanted then return end
    end
  end
end

local ordered = {}
local SORT_LIMIT = 5000

if op == 'random' then
  local all
  if driver then
    all = keep(members_of(driver), driver)
  else
    all = all_but_negatives()
  end
  if #all == 0 then return {1, '', {}} end
  return records_reply({all[(rnd % #all) + 1]})
end

if order_kind == 'pk' then
  if driver and limit < 0 and offset == 0 and after == '' then
    -- A whole result in pk order: the client sorts it, faster than Lua can.
    ordered = keep(members_of(driver), driver)
  elseif driver and driver_size <= SORT_LIMIT then
    ordered = sort_pks(keep(members_of(driver), driver), desc)
    if after ~= '' then
      local cut = {}
      local a = tonumber(after)
      for _, pk in ipairs(ordered) do if tonumber(pk) > a then cut[#cut + 1] = pk end end
      ordered = cut
    end
  elseif not driver and limit < 0 and after == '' then
    ordered = all_but_negatives()
    if desc then
      local reversed = {}
      for i = #ordered, 1, -1 do reversed[#reversed + 1] = ordered[i] end
      ordered = reversed
    end
  else
    local cursor = after ~= '' and ('(' .. after) or '-inf'
    local ceiling = '+inf'
    walk(function()
      local chunk
      if desc then
        chunk = redis.call('ZREVRANGEBYSCORE', ids_key, ceiling, '-inf', 'LIMIT', 0, CHUNK_WALK)
        if #chunk > 0 then ceiling = '(' .. chunk[#chunk] end
      else
        chunk = redis.call('ZRANGEBYSCORE', ids_key, cursor, '+inf', 'LIMIT', 0, CHUNK_WALK)
        if #chunk > 0 then cursor = '(' .. chunk[#chunk] end
      end
      return chunk
    end, ordered)
  end
else
  -- Ordered by a field: irNull values come last (first when descending).
  local nulls = {}
  local function null_segment()
    if not null_key then return {} end
    local pks
    if unordered_key then
      pks = redis.call('SUNION', null_key, unordered_key)
    else
      pks = redis.call('SMEMBERS', null_key)
    end
    return sort_pks(keep(pks, nil), desc)
  end
  if driver and driver_size <= SORT_LIMIT then
    local pks = keep(members_of(driver), driver)
    local keys = {}
    if order_kind == 'z' then
      local paddeds = {}
      for i = 1, #pks do paddeds[i] = padded(pks[i]) end
      local scores = #pks > 0 and chunked_call('ZMSCORE', order_key, paddeds) or {}
      for i = 1, #pks do keys[i] = scores[i] and tonumber(scores[i]) or nil end
    else
      local values = #pks > 0 and stored_values(pks, order_field) or {}
      for i = 1, #pks do keys[i] = type(values[i]) == 'string' and values[i] or nil end
    end
    local rows = {}
    for i = 1, #pks do rows[i] = {keys[i], tonumber(pks[i])} end
    table.sort(rows, function(a, b)
      local ka, kb = a[1], b[1]
      if ka == nil or kb == nil then
        if ka == nil and kb == nil then
          if desc then return a[2] > b[2] end
          return a[2] < b[2]
        end
        if desc then return ka == nil end  -- nulls first when descending
        return kb == nil                    -- nulls last when ascending
      end
      if ka ~= kb then
        local less
        if order_kind == 'z' then less = ka < kb else less = compare_bytes(ka, kb) < 0 end
        if desc then return not less end
        return less
      end
      if desc then return a[2] > b[2] end
      return a[2] < b[2]
    end)
    for i = 1, #rows do ordered[i] = tostring(rows[i][2]) end
  else
    if desc then
      nulls = null_segment()
      for i = 1, math.min(#nulls, wanted) do ordered[#ordered + 1] = nulls[i] end
    end
    if order_kind == 'd' then  -- the text dictionary's values, in order (the 'O' condition)
      local next_value = 0
      local plain = #positives == 0 and #negatives == 0
      walk(function()
        while true do
          next_value = next_value + 1
          local key = text_order.keys[next_value]
          if key == nil then
            text_order.ran_out = true
            return nil
          end
          -- Unfiltered, a value whose objects all come before the page is skipped by its
          -- size: a deep page reads the sizes of the values before it, not their members.
          local n = plain and redis.call('SCARD', key) or 0
          if not plain or #ordered + n > offset then return sort_pks(redis.call('SMEMBERS', key), desc) end
          offset, wanted = offset - n, wanted - n
        end
      end, ordered)
      if text_order.ran_out and not text_order.complete then return {TEXT_MORE, #text_order.keys} end
    else
      walk(function(from)
        local chunk
        if desc then
          chunk = redis.call('ZREVRANGE', order_key, from, from + CHUNK_WALK - 1)
        else
          chunk = redis.call('ZRANGE', order_key, from, from + CHUNK_WALK - 1)
        end
        for i = 1, #chunk do chunk[i] = unpadded(chunk[i]) end
        return chunk
      end, ordered)
    end
    if not desc and #ordered < wanted then
      nulls = null_segment()
      for i = 1, #nulls do
        ordered[#ordered + 1] = nulls[i]
        if #ordered >= wanted then break end
      end
    end
  end
end

if op == 'exists' then return {1, #ordered > 0 and 1 or 0} end

local page = {}
local last = limit < 0 and #ordered or math.min(#ordered, offset + limit)
for i = offset + 1, last do page[#page + 1] = ordered[i] end

if op == 'pks' then return {1, page} end
return records_reply(page)
