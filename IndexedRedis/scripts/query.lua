-- The query engine: find the matching objects and fetch them in one step (its helpers,
-- which need nothing of the call but the state they share with it, are query_lib.lua's).
--
-- The smallest positive condition drives: its members are read, and the other
-- conditions are checked for those members only (SMISMEMBER, ZMSCORE, or the stored
-- records for text ranges), so a query costs what its result and its smallest index
-- cost, not what the model holds.  Without a positive condition, or for a page of an
-- ordered result, the ordered index is walked in chunks until the page is full.
--
-- KEYS: 1 generation pointer, 2 objs hash, 3 ids zset (blocks of pks: see lib.lua), 4
--   schemas hash, then any keys the conditions and the order name, by number (and a
--   TTL model's expiry zset).
-- ARGV: 1 expected generation ('<gen>+<expiry zset #>' for a TTL model: expired objects
--   are absent from every answer, see expiry.py), 2 operation, then
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
--     'R' / 'D' / 'O' / 'W'   an index the query reads (checked as built), a text
--                             dictionary condition, a text order's values, the check
--                             that a large lookup's scratch sets are current: see
--                             text_condition in textindex.lua (replies 20-23 there)
--     'T' node                a condition tree (OR, NOT...: see parse_node), tested
--                             on the candidates; it drives when it has candidates
--                             ('&' of a positive leaf, '|' of kids that all have some)
--                             and they are the fewest
--   then the operation's own arguments:
--     'aggregate': n, then n times: score zset key number, field name
--     'distinct': a field name
-- Operations: records / random -> the pks found (one text: their decimal digits joined
--   by commas, cheaper to make, send and parse than a reply item per pk), {their records} | pks -> {pks} |
--   count -> n | exists -> 0/1 | aggregate -> matches, then per field: how many have
--   a score, their sum (text), the stored value of the lowest and of the highest |
--   distinct -> msgpack of (kind, stored value, count) triples.
--   Reply {0, generation} when the generation moved.
--   (Concatenating the records too would cost more: Lua's table.concat of megabytes
--   takes longer than Redis needs to send them one by one.)
-- A whole result (no offset, limit or cursor) in pk order may come unsorted: the
-- client sorts it.

local expected
expected, exp_key = expected_gen(ARGV[1])
local gen = current_gen(KEYS[1])
if gen ~= expected then return {0, gen} end

objs_key, ids_key = KEYS[2], KEYS[3]  -- query_lib.lua's per-call state
local op = ARGV[2]

-- Expiry (TTL models): an object whose expiry is at or before `now` (the server's
-- clock, read once) is absent from every answer.  `pending` expired objects wait for a
-- sweep; while there are none, nothing is filtered and every fast path stands.
now, pending = 0, 0
if exp_key then
  now = server_ms()
  pending = redis.call('ZCOUNT', exp_key, '-inf', now)
end

if op == 'get' then
  local pks = {}
  for i = 3, #ARGV do pks[#pks + 1] = ARGV[i] end
  return records_reply(alive(pks))
elseif op == 'has' then
  return {1, #alive({ARGV[3]}) == 1 and redis.call('HEXISTS', objs_key, ARGV[3]) or 0}
end

local order_kind, order_key, desc = ARGV[3], key_at(ARGV[4]), ARGV[5] == '1'
local null_key, order_field, unordered_key = key_at(ARGV[6]), ARGV[7], key_at(ARGV[8])
local offset, limit, after, rnd = tonumber(ARGV[9]), tonumber(ARGV[10]), ARGV[11], tonumber(ARGV[12])
if op == 'exists' then offset, limit = 0, 1 end
local wanted = limit < 0 and math.huge or offset + limit

-- The conditions: leaves with candidates (positives), '__ne' sets (negatives, which
-- a walk of the ids leaves out), and trees.
local positives, negatives, trees = {}, {}, {}
local pos = 14
for _ = 1, tonumber(ARGV[13]) do
  local t = ARGV[pos]
  if t == 'T' then
    trees[#trees + 1], pos = parse_node(pos + 1)
  elseif t == 'R' or t == 'O' or t == 'W' then  -- built indexes, a text order's values, a large
    -- lookup's scratch sets (textindex.lua)
    local _none
    _none, pos = text_condition(ARGV, pos)
  else
    local c
    c, pos = parse_node(pos)
    if t == 'N' then negatives[#negatives + 1] = c else positives[#positives + 1] = c end
  end
end
local extra = pos  -- the operation's own arguments start here

local refused = text_verify(ids_key)
if refused then return refused end

local negative_keys = {}
for i, c in ipairs(negatives) do negative_keys[i] = c.key end
local in_negatives = membership(negative_keys)

-- Every pk, in pk order, but those of the negative conditions' sets: the ids in order,
-- less a table of the sets' members.
local function all_but_negatives()
  local all = all_ids(ids_key)
  if #negatives == 0 then return all end
  local excluded = {}
  for _, m in ipairs(union_members(negative_keys)) do excluded[m] = true end
  local out, n = {}, 0
  for i = 1, #all do
    local pk = all[i]
    if not excluded[pk] then
      n = n + 1
      out[n] = pk
    end
  end
  return out
end

local function members_of(c)
  if c.t then return LEAF[c.t].members(c) end
  return node_members(c)
end

-- The pks of a list that meet every condition but `skip` (a positive leaf already
-- met by all of them).
local function keep(pks, skip)
  if #pks == 0 then return pks end
  local ok = {}
  for i = 1, #pks do ok[i] = true end
  for _, c in ipairs(positives) do
    if c ~= skip then
      local flags = LEAF[c.t].test(c, pks)
      for i = 1, #pks do if not flags[i] then ok[i] = false end end
    end
  end
  if #negatives > 0 then
    local excluded = in_negatives(pks)
    for i = 1, #pks do if excluded[i] then ok[i] = false end end
  end
  for _, tree in ipairs(trees) do
    local at, sub = still(pks, ok, true)
    if #sub == 0 then break end
    local flags = node_test(tree, sub)
    for j = 1, #sub do if not flags[j] then ok[at[j]] = false end end
  end
  local kept = {}
  for i = 1, #pks do if ok[i] then kept[#kept + 1] = pks[i] end end
  return kept
end

-- Expired objects leave every candidate list (the conditions' members, the walks'
-- chunks, the ids).
if pending > 0 then
  local keep_live, all_live = keep, all_but_negatives
  keep = function(pks, skip) return alive(keep_live(pks, skip)) end
  all_but_negatives = function() return alive(all_live()) end
end

-- Summaries over the matching pks, CHUNK_READ at a time (see the header):
-- 'aggregate' reads scores, 'distinct' reads the stored values of one field.
local CHUNK_READ = 1000

local function summary(what, pks, at)
  if what == 'aggregate' then
    local reply = {1, #pks}
    local n_fields = tonumber(ARGV[at])
    for f = 1, n_fields do
      local key, field = KEYS[tonumber(ARGV[at + 2 * f - 1])], ARGV[at + 2 * f]
      local n, sum, lo, hi, lo_pk, hi_pk = 0, 0, nil, nil, nil, nil
      for i = 1, #pks, CHUNK_READ do
        local part = {}
        for j = i, math.min(i + CHUNK_READ - 1, #pks) do part[#part + 1] = pad_pk(pks[j]) end
        local scores = redis.call('ZMSCORE', key, unpack(part))
        for j = 1, #part do
          local score = scores[j] and tonumber(scores[j])
          if score then
            n = n + 1
            sum = sum + score
            if lo == nil or score < lo then lo, lo_pk = score, part[j] end
            if hi == nil or score > hi then hi, hi_pk = score, part[j] end
          end
        end
      end
      local lo_value, hi_value = false, false
      if n > 0 then
        local records = redis.call('HMGET', objs_key, unpadded(lo_pk), unpadded(hi_pk))
        lo_value = records[1] and read_record(KEYS[4], records[1])[field] or false
        hi_value = records[2] and read_record(KEYS[4], records[2])[field] or false
      end
      reply[#reply + 1] = n
      reply[#reply + 1] = string.format('%.17g', sum)
      reply[#reply + 1] = lo_value
      reply[#reply + 1] = hi_value
    end
    return reply
  end
  -- 'distinct': every stored value of the field and how many hold it, packed as
  -- msgpack triples (kind 'v' value | 'a' absent from an older record, the value, count).
  local field = ARGV[at]
  local counts, order = {}, {}
  for i = 1, #pks, CHUNK_READ do
    local records = redis.call('HMGET', objs_key, unpack(pks, i, math.min(i + CHUNK_READ - 1, #pks)))
    for j = 1, #records do
      if records[j] then
        local value = read_record(KEYS[4], records[j])[field]
        local slot
        if value == nil then slot = 'a'
        elseif type(value) == 'number' then slot = 'd' .. string.format('%.17g', value)
        else slot = type(value) .. ':' .. tostring(value) end
        local entry = counts[slot]
        if entry == nil then
          entry = {value == nil and 'a' or 'v', value == nil and 0 or value, 0}
          counts[slot] = entry
          order[#order + 1] = entry
        end
        entry[3] = entry[3] + 1
      end
    end
  end
  local flat = {}
  for _, entry in ipairs(order) do
    flat[#flat + 1] = entry[1]
    flat[#flat + 1] = entry[2]
    flat[#flat + 1] = entry[3]
  end
  return {1, cmsgpack.pack(flat)}
end

-- The driver: the condition with the fewest candidates (a positive leaf, or a tree
-- that has candidates); without one, the ids (less the negatives' sets) are walked.
local driver
local driver_size = math.huge
for _, c in ipairs(positives) do
  local n = LEAF[c.t].size(c)
  if n < driver_size then driver, driver_size = c, n end
end
for _, tree in ipairs(trees) do
  local n = node_size(tree)
  if n and n < driver_size then driver, driver_size = tree, n end
end

-- Every matching pk, in no particular order.
local function matching()
  if driver then return keep(members_of(driver), driver) end
  local all = all_but_negatives()
  if #trees > 0 then all = keep(all, nil) end
  return all
end

-- Counting needs no order, and often no members at all.
if op == 'count' then
  if #negatives == 0 and #positives == 1 and #trees == 0 and pending == 0 then return {1, driver_size} end
  if #positives == 0 and #negatives == 0 and #trees == 0 then
    -- every expiry entry has its record (and id), so the expired ones are `pending`
    return {1, redis.call('HLEN', objs_key) - pending}
  end
  return {1, #matching()}
end

if op == 'aggregate' or op == 'distinct' then
  return summary(op, matching(), extra)
end

local function sort_pks(pks, descending)
  local numbers = {}
  for i = 1, #pks do numbers[i] = tonumber(pks[i]) end
  if descending then table.sort(numbers, function(a, b) return a > b end) else table.sort(numbers) end
  for i = 1, #numbers do numbers[i] = pk_text(numbers[i]) end
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
  local all = matching()
  if #all == 0 then return {1, '', {}} end
  return records_reply({all[(rnd % #all) + 1]})
end

if order_kind == 'pk' then
  if driver and limit < 0 and offset == 0 and after == '' then
    -- A whole result in pk order: the client sorts it, faster than Lua can.
    ordered = members_of(driver)
    if #positives > 1 or #negatives > 0 or #trees > 0 or pending > 0 then ordered = keep(ordered, driver) end
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
    if #trees > 0 then ordered = keep(ordered, nil) end
    if desc then
      local reversed = {}
      for i = #ordered, 1, -1 do reversed[#reversed + 1] = ordered[i] end
      ordered = reversed
    end
  else
    walk(ids_walk(ids_key, desc, not desc and after ~= '' and tonumber(after) or nil), ordered)
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
      for i = 1, #pks do paddeds[i] = pad_pk(pks[i]) end
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
    for i = 1, #rows do ordered[i] = pk_text(rows[i][2]) end
  else
    if desc then
      nulls = null_segment()
      for i = 1, math.min(#nulls, wanted) do ordered[#ordered + 1] = nulls[i] end
    end
    if order_kind == 'd' then  -- the text dictionary's values, in order (the 'O' condition)
      local next_value = 0
      local plain = #positives == 0 and #negatives == 0 and #trees == 0 and pending == 0  -- sizes count expired ones
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

local page = ordered
if offset > 0 or (limit >= 0 and limit < #ordered) then
  page = {}
  local last = limit < 0 and #ordered or math.min(#ordered, offset + limit)
  for i = offset + 1, last do page[#page + 1] = ordered[i] end
end

if op == 'pks' then return {1, page} end
return records_reply(page)
