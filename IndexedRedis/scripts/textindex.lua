-- Text dictionaries and index layouts (see IndexedRedis/textindex.py); prepended, after
-- lib.lua, to the scripts that keep or read them.
--
-- A generation's layout hash: field -> letters of the indexes its data has built
-- ('s' value sets, 'h' hashed value sets, 'z' score zset, 'x' lex zset, 'd' text
-- dictionaries), '_' -> the digest of the writers' layout while every writer agreed,
-- 'v:<field>' -> the version of the field's dictionaries, bumped whenever a value
-- enters or leaves them, '_w' -> a count of the writes that changed the generation's
-- indexes (see note_write; no field name begins with '_').  No layout hash in a
-- non-empty generation: written before layouts existed, it has every index but the
-- dictionaries.

local TEXT_NOT_BUILT, TEXT_STALE, TEXT_MORE, TEXT_MOVED = 20, 21, 22, 23

-- The layout a writer keeps up to date in a generation: field -> letters.  `flat` is
-- the writer's {field, letters, ...}, `digest` their digest.  An empty generation takes
-- the writer's layout; otherwise an index the writer does not keep leaves the layout
-- (its entries would drift).  Writes only before the caller's first data write.
-- When the stored digest is the writer's (the common case), it returns true: every index
-- the writer keeps is built, so every dictionary the writer names is kept.
local function layout_sync(layout_key, ids_key, digest, flat)
  if redis.call('HGET', layout_key, '_') == digest then return true end
  local mine = {}
  for i = 1, #flat, 2 do mine[flat[i]] = flat[i + 1] end
  local stored = redis.call('HGETALL', layout_key)
  local built = {}
  for i = 1, #stored, 2 do
    local name = stored[i]
    if string.sub(name, 1, 1) ~= '_' and string.sub(name, 1, 2) ~= 'v:' then built[name] = stored[i + 1] end
  end
  if redis.call('ZCARD', ids_key) == 0 then  -- empty: the writer's layout is the truth
    for name in pairs(built) do
      if not mine[name] then redis.call('HDEL', layout_key, name) end
    end
    local args = {'_', digest}
    for i = 1, #flat do args[#args + 1] = flat[i] end
    redis.call('HSET', layout_key, unpack(args))
    return mine
  end
  if #stored == 0 then return {} end  -- written before layouts: no dictionaries to keep
  redis.call('HDEL', layout_key, '_')
  local kept = {}
  for name, letters in pairs(built) do
    local own, both = mine[name] or '', ''
    for i = 1, #letters do
      local letter = string.sub(letters, i, i)
      if string.find(own, letter, 1, true) then both = both .. letter end
    end
    if both == '' then
      redis.call('HDEL', layout_key, name)
    else
      if both ~= letters then redis.call('HSET', layout_key, name, both) end
      kept[name] = both
    end
  end
  return kept
end

-- Count a write that changes the generation's index entries ('_w'), once per script
-- call, after layout_sync gave `layout`: a large text lookup gathers its value sets in
-- steps (text_union.lua) and is answered only if no write came in between.  A
-- generation without a layout hash (written before layouts) has no dictionaries, so
-- no such lookup: it is left without one.
local function note_write(layout_key, layout)
  if layout == true or next(layout) ~= nil then redis.call('HINCRBY', layout_key, '_w', 1) end
end

local function keeps_dict(layout, field)
  if layout == true then return true end
  local letters = layout[field]
  return letters ~= nil and string.find(letters, 'd', 1, true) ~= nil
end

-- Bump a field's dictionary version.  A version starts at the server's clock (in
-- microseconds), so that a layout hash made again (the data deleted, a database
-- flushed) never repeats a version a client may still hold a plan for.
local function dict_bump(layout_key, field)
  local name = 'v:' .. field
  if redis.call('HINCRBY', layout_key, name, 1) == 1 then
    local t = redis.call('TIME')
    redis.call('HSET', layout_key, name, t[1] .. string.format('%06d', tonumber(t[2])))
  end
end

-- ---- a dictionary's blocks ---------------------------------------------------------
-- A text dictionary is one zset (all scores 0) whose members are *blocks*: runs of
-- consecutive values, each value escaped (NUL as NUL 0x01) and ended by NUL NUL
-- (keys.lex_text), so that a block sorts by its first value and no two blocks overlap.
-- A save adds a value as a block of its own (one ZADD, as cheap as a plain member) when
-- it falls between blocks, or into the block whose range holds it; a reset packs its
-- dictionaries into blocks of DICT_PACK values (dict_pack_step), which is what makes
-- them small: a skiplist node per block instead of per value (~110 B a value before).
-- A block that grows past DICT_BLOCK_MAX values or DICT_BLOCK_BYTES is split in two.
local DICT_PACK, DICT_BLOCK_MAX, DICT_BLOCK_BYTES = 64, 128, 4096

local function dict_escape(text)
  if string.find(text, '\0', 1, true) then return (string.gsub(text, '%z', '\0\1')) end
  return text
end

local function dict_unescape(entry)
  if string.find(entry, '\0', 1, true) then return (string.gsub(entry, '%z\1', '\0')) end
  return entry
end

-- A block's escaped values, in order.  (Inside an escaped value a NUL is always
-- followed by 0x01, so the first NUL NUL after a value's start is its end.)  A plain
-- find per value: twice as fast as gmatch's '(.-)%z%z'.
local function dict_entries(member, out)
  out = out or {}
  local pos, len = 1, #member
  while pos <= len do
    local stop = string.find(member, '\0\0', pos, true)
    if not stop then  -- not a block (a foreign write): its rest reads as one value
      out[#out + 1] = string.sub(member, pos)
      break
    end
    out[#out + 1] = string.sub(member, pos, stop - 1)
    pos = stop + 2
  end
  return out
end

-- The block whose range holds an escaped value: the last block whose first value is
-- not after it (nil: the value comes before every block).
local function dict_block_of(key, escaped)
  return redis.call('ZREVRANGEBYLEX', key, '(' .. escaped .. '\0\1', '-', 'LIMIT', 0, 1)[1]
end

local function dict_is_single(member)
  return string.find(member, '\0\0', 1, true) == #member - 1
end

-- Where `escaped` is, or goes, in a block's sorted values: index, and whether it is there.
local function dict_search(entries, escaped)
  local lo, hi = 1, #entries
  while lo <= hi do
    local mid = math.floor((lo + hi) / 2)
    local d = compare_bytes(entries[mid], escaped)
    if d == 0 then return mid, true end
    if d < 0 then lo = mid + 1 else hi = mid - 1 end
  end
  return lo, false
end

local function dict_block(entries, from, to)
  local parts = {}
  for i = from, to do parts[#parts + 1] = entries[i] end
  return table.concat(parts, '\0\0') .. '\0\0'
end

-- Replace a block by `entries` (none: the block goes), split in two when too big.
local function dict_rewrite(key, member, entries)
  redis.call('ZREM', key, member)
  local n = #entries
  if n == 0 then return end
  local block = dict_block(entries, 1, n)
  if n > 1 and (n > DICT_BLOCK_MAX or #block > DICT_BLOCK_BYTES) then
    local half = math.floor(n / 2)
    redis.call('ZADD', key, 0, dict_block(entries, 1, half), 0, dict_block(entries, half + 1, n))
  else
    redis.call('ZADD', key, 0, block)
  end
end

-- Add a value to a dictionary; true when it was not there.
local function dict_add(key, text)
  local escaped = dict_escape(text)
  local single = escaped .. '\0\0'
  local member = dict_block_of(key, escaped)
  if member == nil or (member ~= single and dict_is_single(member)) then
    return redis.call('ZADD', key, 0, single) == 1
  end
  if member == single then return false end
  local entries = dict_entries(member)
  if compare_bytes(entries[#entries], escaped) < 0 then  -- after the block's last value
    return redis.call('ZADD', key, 0, single) == 1
  end
  local at, found = dict_search(entries, escaped)
  if found then return false end
  table.insert(entries, at, escaped)
  dict_rewrite(key, member, entries)
  return true
end

-- Take a value out of a dictionary; true when it was there.
local function dict_remove(key, text)
  local escaped = dict_escape(text)
  if redis.call('ZREM', key, escaped .. '\0\0') == 1 then return true end
  local member = dict_block_of(key, escaped)
  if member == nil or dict_is_single(member) then return false end
  local entries = dict_entries(member)
  local at, found = dict_search(entries, escaped)
  if not found then return false end
  table.remove(entries, at)
  dict_rewrite(key, member, entries)
  return true
end

-- One bounded step of packing a reset's dictionary: moves the first `budget` values
-- of `load_key` (one member each, as its batches wrote them) onto the end of the
-- dictionary, in blocks of DICT_PACK values (the dictionary's last block first takes
-- what it has room for).  The values come in order and after every value the
-- dictionary holds, since only these steps write it while the reset loads.  The
-- dictionary never had a member per value, so its hash table stays small (a zset's
-- table does not shrink when members go).  Returns how many values wait still.
local function dict_pack_step(load_key, key, budget)
  local got = redis.call('ZRANGE', load_key, 0, budget - 1)
  if #got == 0 then return 0 end
  local entries = {}
  local tail = redis.call('ZRANGE', key, -1, -1)[1]
  if tail then
    dict_entries(tail, entries)
    if #entries < DICT_PACK then redis.call('ZREM', key, tail) else entries = {} end
  end
  for _, member in ipairs(got) do dict_entries(member, entries) end
  redis.call('ZREMRANGEBYRANK', load_key, 0, #got - 1)
  local blocks = {}
  local from, size = 1, 0
  for i = 1, #entries do
    size = size + #entries[i] + 2
    if i - from + 1 == DICT_PACK or size >= DICT_BLOCK_BYTES or i == #entries then
      blocks[#blocks + 1] = 0
      blocks[#blocks + 1] = dict_block(entries, from, i)
      from, size = i + 1, 0
    end
  end
  chunked_write('ZADD', key, blocks)
  return redis.call('ZCARD', load_key)
end

-- A value leaves a field's dictionaries (its set emptied); `fold` is its folded member
-- ('': none).
local function dict_leave(layout_key, field, dict_key, fold_key, text, fold)
  dict_remove(dict_key, text)
  if fold ~= '' then redis.call('ZREM', fold_key, fold) end
  dict_bump(layout_key, field)
end

-- The dictionaries' upkeep for write_entries (lib.lua): after an index group (see
-- save.lua's header) moved an object between value sets, the old value leaves the
-- dictionaries when its set emptied, and the new one enters them when its set had no
-- member before (dict_add adds it only then; otherwise nothing changes, nor the version).
-- `layout`: what layout_sync returned for the writer; a field whose layout has no 'd'
-- (data written before the dictionaries) keeps none.
local function text_upkeep(layout, layout_key)
  return function(ix, moved, compact)
    if compact then  -- {field, set #, dictionary #, text[, folded dictionary #, folded member]}
      -- A value enters the dictionaries with its set's first member (SCARD: cheaper
      -- than looking the value up among the blocks).
      if keeps_dict(layout, ix[1]) and redis.call('SCARD', KEYS[ix[2]]) == 1
          and dict_add(KEYS[ix[3]], ix[4]) then
        if ix[5] then redis.call('ZADD', KEYS[ix[5]], 0, ix[6]) end
        dict_bump(layout_key, ix[1])
      end
      return
    end
    if ix[14] == nil or ix[14] == 0 or not keeps_dict(layout, ix[1]) then return end
    if moved and ix[2] == 'v' and redis.call('SCARD', KEYS[ix[4]]) == 0 then
      dict_leave(layout_key, ix[1], KEYS[ix[14]], KEYS[ix[15]], ix[3], ix[16])
    end
    if ix[17] == 1 and dict_add(KEYS[ix[14]], ix[18]) then
      if ix[19] ~= '' then redis.call('ZADD', KEYS[ix[15]], 0, ix[19]) end
      dict_bump(layout_key, ix[1])
    end
  end
end

-- Walk a field's dictionaries for a text condition, about `budget` values per call.
-- spec: raw_min, raw_max (lex bounds over the values), fold_min, fold_max (over the
-- folded members; fold_min '' skips them), needle ('': every value in range; else
-- only those whose text holds it).  cursor: 's' start, 'r<bound>' / 'f<bound>' where
-- the raw / folded walk goes on (over blocks / members), '' done.  Returns the
-- candidate values (whole blocks: the client checks each exactly) and the next cursor.
local function text_walk(dict_key, fold_key, spec, cursor, budget)
  local out = {}
  if cursor == 's' then
    local low = '-'
    if spec.raw_min ~= '-' then
      local member = dict_block_of(dict_key, dict_escape(string.sub(spec.raw_min, 2)))
      if member then low = '[' .. member end
    end
    cursor = 'r' .. low
  end
  local needle = spec.needle
  local folded_needle = string.gsub(needle, '%z', '\0\1')
  local raw_high = spec.raw_max == '+' and '+' or ('(' .. dict_escape(string.sub(spec.raw_max, 2)) .. '\0\1')
  while cursor ~= '' and budget > 0 do
    local phase, low = string.sub(cursor, 1, 1), string.sub(cursor, 2)
    local got, done
    if phase == 'r' then
      local n = math.max(1, math.floor(budget / DICT_PACK))
      got = redis.call('ZRANGEBYLEX', dict_key, low, raw_high, 'LIMIT', 0, n)
      done = #got < n
      for _, member in ipairs(got) do
        for _, entry in ipairs(dict_entries(member)) do
          budget = budget - 1
          local value = dict_unescape(entry)
          if needle == '' or string.find(value, needle, 1, true) then out[#out + 1] = value end
        end
      end
    else
      got = redis.call('ZRANGEBYLEX', fold_key, low, spec.fold_max, 'LIMIT', 0, budget)
      done = #got < budget
      budget = budget - #got
      for _, member in ipairs(got) do
        local cut = string.find(member, '\0\0', 1, true)
        if cut and (needle == '' or string.find(string.sub(member, 1, cut - 1), folded_needle, 1, true)) then
          out[#out + 1] = string.sub(member, cut + 2)
        end
      end
    end
    if done then  -- this part is done
      if phase == 'r' and spec.fold_min ~= '' then cursor = 'f' .. spec.fold_min else cursor = '' end
    else
      cursor = phase .. '(' .. got[#got]
    end
  end
  return out, cursor
end

-- One step of a text order's walk: about `budget` values in order (descending when
-- `desc`), from `bound`: '' the start, '(<value>' after a value (the values of the
-- block holding it come too: the client drops those not past it), 'b<block>' after a
-- block (a cursor this returned).  Returns the values and the next cursor ('' done).
local function text_order_walk(dict_key, desc, bound, budget)
  local low, high
  if bound == '' then
    low = desc and '+' or '-'
  elseif string.sub(bound, 1, 1) == 'b' then
    low = '(' .. string.sub(bound, 2)
  else
    local escaped = dict_escape(string.sub(bound, 2))
    if desc then
      low = '(' .. escaped .. '\0\1'
    else
      local member = dict_block_of(dict_key, escaped)
      low = member and ('[' .. member) or '-'
    end
  end
  high = desc and '-' or '+'
  local out, last = {}, nil
  while true do
    local n = math.max(1, math.floor((budget - #out) / DICT_PACK))
    local got = redis.call(desc and 'ZREVRANGEBYLEX' or 'ZRANGEBYLEX', dict_key, low, high, 'LIMIT', 0, n)
    for _, member in ipairs(got) do
      local entries = dict_entries(member)
      if desc then
        for i = #entries, 1, -1 do out[#out + 1] = dict_unescape(entries[i]) end
      else
        for i = 1, #entries do out[#out + 1] = dict_unescape(entries[i]) end
      end
      last = member
    end
    if #got < n then return out, '' end
    if #out >= budget then return out, 'b' .. last end
    low = '(' .. last
  end
end

-- ---- the query's side ------------------------------------------------------------
local text_layout_key
local text_requirements = {}  -- {field, letters}: indexes the query reads
local text_plans = {}          -- dictionary conditions: {field, version, spec, dict, fold}
local text_order               -- {field, version, complete, keys} when ordered by a dictionary
local text_writes              -- {writes, keys}: a large lookup's scratch sets (text_union.lua)

-- The query's side afresh, as in every EVAL (a function's library keeps it between calls).
local function reset_textindex_state()
  text_layout_key, text_requirements, text_plans, text_order, text_writes = nil, {}, {}, nil, nil
end

-- Parse a query condition of kind 'R' (an index the query reads: layout #, field,
-- letters), 'D' (a dictionary condition: layout #, field, believed version, dict #,
-- fold #, raw min, raw max, fold min, fold max, needle, n, n value set #s: for a large
-- lookup, its scratch sets), 'O' (the order's values: layout #, field, believed version,
-- complete '1'/'0', n, n set #s) or 'W' (a large lookup's scratch sets, see
-- text_union.lua: layout #, the writes count they were made at, n, n scratch set #s).
-- Returns the positive condition it stands for (or nil) and the next position.
local function text_condition(argv, pos)
  local t = argv[pos]
  text_layout_key = KEYS[tonumber(argv[pos + 1])]
  if t == 'R' then
    text_requirements[#text_requirements + 1] = {field = argv[pos + 2], letters = argv[pos + 3]}
    return nil, pos + 4
  end
  if t == 'W' then  -- layout #, the writes count the scratch sets were made at, n, n scratch set #s
    local n = tonumber(argv[pos + 3])
    local keys = {}
    for i = 1, n do keys[i] = KEYS[tonumber(argv[pos + 3 + i])] end
    text_writes = {writes = argv[pos + 2], keys = keys}
    return nil, pos + 4 + n
  end
  if t == 'O' then
    local n = tonumber(argv[pos + 5])
    local keys = {}
    for i = 1, n do keys[i] = KEYS[tonumber(argv[pos + 5 + i])] end
    text_order = {field = argv[pos + 2], version = argv[pos + 3], complete = argv[pos + 4] == '1', keys = keys}
    return nil, pos + 6 + n
  end
  local plan = {field = argv[pos + 2], version = argv[pos + 3], dict = KEYS[tonumber(argv[pos + 4])],
                fold = KEYS[tonumber(argv[pos + 5])],
                spec = {raw_min = argv[pos + 6], raw_max = argv[pos + 7], fold_min = argv[pos + 8],
                        fold_max = argv[pos + 9], needle = argv[pos + 10]}}
  local n = tonumber(argv[pos + 11])
  local keys = {}
  for i = 1, n do keys[i] = KEYS[tonumber(argv[pos + 11 + i])] end
  text_plans[#text_plans + 1] = plan
  return {t = 'U', keys = keys}, pos + 12 + n
end

-- Check, before the query reads anything else, that the indexes it reads are built and
-- that its dictionary plans are current.  Returns nil, or the reply to give instead:
-- {20, field, letters} an index is not built | {21, plan number (0: the order), version,
-- cursor, values...} a plan is stale (with the values of a bounded walk) | {23} a write
-- came in since the scratch sets were made, or one of them is gone.
local TEXT_CHEAP = 1000
local function text_verify(ids_key)
  if text_layout_key == nil then return nil end
  local names = {}
  for _, r in ipairs(text_requirements) do names[#names + 1] = r.field end
  for _, p in ipairs(text_plans) do names[#names + 1] = 'v:' .. p.field end
  if text_order then names[#names + 1] = 'v:' .. text_order.field end
  if text_writes then names[#names + 1] = '_w' end
  local got = redis.call('HMGET', text_layout_key, unpack(names))
  local legacy
  for i, r in ipairs(text_requirements) do
    local have = got[i]
    if not have then
      if legacy == nil then
        if redis.call('EXISTS', text_layout_key) == 1 then legacy = 'no'
        elseif redis.call('ZCARD', ids_key) > 0 then legacy = 'old' else legacy = 'empty' end
      end
      if legacy == 'no' or (legacy == 'old' and string.find(r.letters, 'd', 1, true)) then
        return {TEXT_NOT_BUILT, r.field, r.letters}
      end
    else
      for j = 1, #r.letters do
        if not string.find(have, string.sub(r.letters, j, j), 1, true) then
          return {TEXT_NOT_BUILT, r.field, r.letters}
        end
      end
    end
  end
  local base = #text_requirements
  for i, p in ipairs(text_plans) do
    local version = got[base + i] or '0'
    if version ~= p.version then
      local values, cursor = text_walk(p.dict, p.fold, p.spec, 's', TEXT_CHEAP)
      local reply = {TEXT_STALE, i, version, cursor}
      for _, v in ipairs(values) do reply[#reply + 1] = v end
      return reply
    end
  end
  if text_order then
    local version = got[base + #text_plans + 1] or '0'
    if version ~= text_order.version then return {TEXT_STALE, 0, version, ''} end
  end
  if text_writes then
    if (got[#names] or '0') ~= text_writes.writes then return {TEXT_MOVED} end
    if redis.call('EXISTS', unpack(text_writes.keys)) ~= #text_writes.keys then return {TEXT_MOVED} end
  end
  return nil
end
