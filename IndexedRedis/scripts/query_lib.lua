-- query.lua's helpers: reading the candidates of a query's conditions, testing pks
-- against them, and replying with records.  As a Redis function library (see
-- scripts/__init__.py) they are defined once, when the library loads, not on every
-- call: remaking these closures cost about 20 µs per query on a slow 2-core VM.  What
-- they read of the call is the state below, which query.lua sets first thing (and
-- ``reset_query_lib_state`` clears on every function call).

-- The call's records hash and ids zset (KEYS[2], KEYS[3]); a TTL model's expiry zset,
-- the server's clock (ms) read once, how many expired objects wait for a sweep, and the
-- expired pks as a table (see ``alive``).
local objs_key, ids_key, exp_key, now, pending, expired_set = nil, nil, nil, 0, 0, nil

local function reset_query_lib_state()
  objs_key, ids_key, exp_key, now, pending, expired_set = nil, nil, nil, 0, 0, nil
end

-- These pks but the expired ones: by the expiry of each (ZMSCORE), or, once the
-- expired ones are no more than the pks asked about, by a table of them read once.
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

-- The records of these pks as a 'records' reply (see query.lua's header).  The pks go back as
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

local function key_at(n)
  n = tonumber(n)
  if n == 0 then return nil end
  return KEYS[n]
end

local function unpadded(member) return unpad_pk(string.sub(member, -PK_DIGITS)) end

local function paddeds_of(pks)
  local out = {}
  for i = 1, #pks do out[i] = pad_pk(pks[i]) end
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
