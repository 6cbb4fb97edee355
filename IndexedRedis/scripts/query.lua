-- The query engine: find the matching objects and fetch them in one step.
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

local expected, exp_key = expected_gen(ARGV[1])
local gen = current_gen(KEYS[1])
if gen ~= expected then return {0, gen} end

local objs_key, ids_key = KEYS[2], KEYS[3]
local op = ARGV[2]

-- Expiry (TTL models): an object whose expiry is at or before `now` (the server's
-- clock, read once) is absent from every answer.  `pending` expired objects wait for a
-- sweep; while there are none, nothing is filtered and every fast path stands.
local now, pending = 0, 0
if exp_key then
  now = server_ms()
  pending = redis.call('ZCOUNT', exp_key, '-inf', now)
end

-- These pks but the expired ones: by the expiry of each (ZMSCORE), or, once the
-- expired ones are no more than the pks asked about, by a table of them read once.
local expired_set
local function alive(pks)
  if pending == 0 or #pks == 0 then return pks end
  local out = {}
  if expired_set == nil and pending <= #pks then
    expired_set = {}
    for _, pk in ipairs(redis.call('ZRANGEBYSCORE', exp_key, '-inf', now)) do expired_set[pk] = true end
  end
  if expired_set then
    for i = 1, #pks do if not expired_set[pks[i]] then out[#out + 1] = pks[i] end end
    return out
  end
  local scores = chunked_call('ZMSCORE', exp_key, pks)
  for i = 1, #pks do if not is_expired(scores[i], now) then out[#out + 1] = pks[i] end end
  return out
end

-- The records of these pks as a 'records' reply (see the header).  The pks go back as
-- one text, their decimal digits joined by commas: one C call here (table.concat),
-- where a number per pk and a msgpack array cost a loop of tonumber and a pack.
local function records_reply(pks)
  local n = #pks
  if n == 0 then return {1, '', {}} end
  local blobs = n <= CHUNK and redis.call('HMGET', objs_key, unpack(pks)) or chunked_call('HMGET', objs_key, pks)
  local whole = true
  for i = 1, n do
    if not blobs[i] then
      whole = false
      break
    end
  end
  if whole then return {1, table.concat(pks, ','), blobs} end  -- the reply's list as it came
  local found, records, kept = {}, {}, 0
  for i = 1, n do
    local blob = blobs[i]
    if blob then
      kept = kept + 1
      found[kept] = pks[i]
      records[kept] = blob
    end
  end
  if kept == 0 then return {1, '', {}} end
  return {1, table.concat(found, ','), records}
end

if op == 'get' then
  local pks = {}
  for i = 3, #ARGV do pks[#pks + 1] = ARGV[i] end
  return records_reply(alive(pks))
elseif op == 'has' then
  return {1, #alive({ARGV[3]}) == 1 and redis.call('HEXISTS', objs_key, ARGV[3]) or 0}
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

local padded = pad_pk
local function unpadded(member) return unpad_pk(string.sub(member, -PK_DIGITS)) end

local function paddeds_of(pks)
  local out = {}
  for i = 1, #pks do out[i] = padded(pks[i]) end
  return out
end

-- Append to `out` the members of `list` not `seen` yet.
local function add_new(seen, out, list)
  for _, m in ipairs(list) do
    if not seen[m] then
      seen[m] = true
      out[#out + 1] = m
    end
  end
end

-- The members of any of many sets (SUNION of at most CHUNK keys at a time: Lua's
-- unpack() cannot spread more).
local function union_members(keys)
  if #keys == 0 then return {} end
  if #keys <= CHUNK then return redis.call('SUNION', unpack(keys)) end
  local seen, out = {}, {}
  for i = 1, #keys, CHUNK do
    add_new(seen, out, redis.call('SUNION', unpack(keys, i, math.min(i + CHUNK - 1, #keys))))
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
    for i = 1, #pks do flags[i] = false end
    for _, key in ipairs(keys) do
      local answers = chunked_call('SMISMEMBER', key, pks)
      for i = 1, #pks do if answers[i] == 1 then flags[i] = true end end
    end
    return flags
  end
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

local function set_flags(pks, flags)
  for i = 1, #pks do flags[i] = flags[i] == 1 end
  return flags
end

-- The kinds of leaf condition (see compiler.leaf_args, which encodes them).  Each
-- reads its ARGV from `pos` into `c` and returns the position after them, and says
-- which of a list of pks it holds (`test`: a flag per position).  A kind with a
-- candidate set also says how large it is (`size`) and what its members are; one
-- without (`size` nil: a complement) is tested only.  A new kind is one more entry.
local LEAF = {}
LEAF.S = {
  parse = function(c, p) c.key = KEYS[tonumber(ARGV[p])]; return p + 1 end,
  size = function(c) return redis.call('SCARD', c.key) end,
  members = function(c) return redis.call('SMEMBERS', c.key) end,
  test = function(c, pks) return set_flags(pks, chunked_call('SMISMEMBER', c.key, pks)) end,
}
LEAF.N = {
  parse = LEAF.S.parse,
  test = function(c, pks)
    local flags = chunked_call('SMISMEMBER', c.key, pks)
    for i = 1, #pks do flags[i] = flags[i] == 0 end
    return flags
  end,
}
LEAF.U = {
  parse = function(c, p)
    c.keys = {}
    for i = 1, tonumber(ARGV[p]) do c.keys[i] = KEYS[tonumber(ARGV[p + i])] end
    return p + 1 + #c.keys
  end,
  size = function(c)
    local n = 0
    for _, key in ipairs(c.keys) do n = n + redis.call('SCARD', key) end
    return n
  end,
  members = function(c) return union_members(c.keys) end,
  test = function(c, pks)
    c.any = c.any or membership(c.keys)
    return c.any(pks)
  end,
}
-- A range over a sorted set whose members end with padded pks (kinds Z and L):
-- `more` reads the kind's further arguments, `test` checks pks.
local function range_leaf(count_cmd, range_cmd, more, test)
  return {
    parse = function(c, p)
      c.key, c.min, c.max = KEYS[tonumber(ARGV[p])], ARGV[p + 1], ARGV[p + 2]
      return more(c, p + 3)
    end,
    size = function(c) return redis.call(count_cmd, c.key, c.min, c.max) end,
    members = function(c)
      local raw = redis.call(range_cmd, c.key, c.min, c.max)
      for i = 1, #raw do raw[i] = unpadded(raw[i]) end
      return raw
    end,
    test = test,
  }
end
LEAF.Z = range_leaf('ZCOUNT', 'ZRANGEBYSCORE', function(_, p) return p end, function(c, pks)
  local scores = chunked_call('ZMSCORE', c.key, paddeds_of(pks))
  local flags = {}
  for i = 1, #pks do flags[i] = score_in(scores[i], c) end
  return flags
end)
LEAF.L = range_leaf('ZLEXCOUNT', 'ZRANGEBYLEX', function(c, p)
  c.field, c.rawmin, c.rawmax = ARGV[p], ARGV[p + 1], ARGV[p + 2]
  return p + 3
end, function(c, pks)
  local values = stored_values(pks, c.field)
  local flags = {}
  for i = 1, #pks do flags[i] = text_in(values[i], c) end
  return flags
end)

-- A text dictionary condition: the value sets its walk found (textindex.lua), as 'U'.
LEAF.D = {
  parse = function(c, p)
    local u, after = text_condition(ARGV, p - 1)
    c.keys = u.keys
    return after
  end,
  size = LEAF.U.size, members = LEAF.U.members, test = LEAF.U.test,
}

-- Condition trees (see q.py and compiler._tree_args): '&' n kids, '|' n kids,
-- '!' kid, or a leaf.  A tree tests a list of pks by asking each kid only about the
-- pks still undecided; its candidates are those of its cheapest kid for '&', the
-- union of its kids' for '|' (when each has some), none for '!'.
local function parse_node(p)
  local t = ARGV[p]
  if t == '&' or t == '|' then
    local node = {op = t, kids = {}}
    p = p + 2
    for i = 1, tonumber(ARGV[p - 1]) do node.kids[i], p = parse_node(p) end
    return node, p
  elseif t == '!' then
    local node = {op = t, kids = {}}
    node.kids[1], p = parse_node(p + 1)
    return node, p
  end
  local kind = LEAF[t]
  if not kind then error('IR_BAD_QUERY unknown condition kind ' .. tostring(t)) end
  local c = {t = t}
  return c, kind.parse(c, p + 1)
end

local function node_size(n)
  if n.sized then return n.size end
  n.sized = true
  if n.t then
    local size = LEAF[n.t].size
    n.size = size and size(n) or nil
  elseif n.op == '&' then
    for _, kid in ipairs(n.kids) do
      local s = node_size(kid)
      if s and (n.size == nil or s < n.size) then n.size, n.best = s, kid end
    end
  elseif n.op == '|' then
    n.size = 0
    for _, kid in ipairs(n.kids) do
      local s = node_size(kid)
      if s == nil then n.size = nil; break end
      n.size = n.size + s
    end
  end
  return n.size
end

local function node_members(n)
  if n.t then return LEAF[n.t].members(n) end
  if n.op == '&' then return node_members(n.best) end
  local seen, out = {}, {}
  for _, kid in ipairs(n.kids) do add_new(seen, out, node_members(kid)) end
  return out
end

-- The pks whose flag is still `value`, and their positions.
local function still(pks, flags, value)
  local at, sub = {}, {}
  for i = 1, #pks do
    if flags[i] == value then
      at[#at + 1] = i
      sub[#sub + 1] = pks[i]
    end
  end
  return at, sub
end

local function node_test(n, pks)
  if n.t then return LEAF[n.t].test(n, pks) end
  local flags = {}
  if n.op == '!' then
    local inner = node_test(n.kids[1], pks)
    for i = 1, #pks do flags[i] = not inner[i] end
    return flags
  end
  local all = n.op == '&'  -- '&': undecided while true; '|': while false
  for i = 1, #pks do flags[i] = all end
  for _, kid in ipairs(n.kids) do
    local at, sub = still(pks, flags, all)
    if #sub == 0 then break end
    local answers = node_test(kid, sub)
    for j = 1, #sub do
      if answers[j] ~= all then flags[at[j]] = not all end
    end
  end
  return flags
end

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
        for j = i, math.min(i + CHUNK_READ - 1, #pks) do part[#part + 1] = padded(pks[j]) end
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
