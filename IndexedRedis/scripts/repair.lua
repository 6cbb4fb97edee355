-- repair: apply a batch of fixes found by check, atomically.  Each fix comes with what
-- the check saw (a belief); a fix whose belief no longer holds (a save or delete got
-- there first) is skipped, so a repair never undoes a concurrent write.  Every belief
-- and key type is checked before the first write.
--
-- KEYS: 1 generation pointer, 2 objs hash, 3 schemas hash, 4 layout hash (whose count of
--   index writes, '_w', a batch that fixes anything bumps, as a save does: see
--   note_write in textindex.lua), then the keys fixed
-- ARGV: 1 expected generation, then per fix: op, key number, member, score, pk,
--   belief, belief field, belief kind, belief value
--   ops: 'SADD' / 'SREM' a set member, 'ZADD' (with score) / 'ZREM' a zset member,
--     'IADD' / 'IREM' a pk into or out of the ids zset (its block, see lib.lua),
--     'MAX' raise a counter to at least the member, 'TADD' / 'TREM' a text dictionary value
--     (into or out of its block), 'DADD' / 'DREM' a folded dictionary member (score, for
--     these four: the layout hash's key number, whose 'v:<belief field>' version is bumped)
--   beliefs: 'x' none | 'a' no record has the pk | 'e' a record has it | 'b' the record
--     is this blob (belief value) | 'f' the record's field (belief field) holds irNull
--     (kind 'n') or the value (kind 'v') | 's' / 'z' the set numbered by the belief value
--     has members / has none
-- Reply: {1, a '1' (applied) or '0' (skipped) per fix} | {0, generation}

local gen = current_gen(KEYS[1])
if gen ~= ARGV[1] then return {0, gen} end

local types = {SADD = 'set', SREM = 'set', ZADD = 'zset', ZREM = 'zset', MAX = 'string', DADD = 'zset',
               DREM = 'zset', TADD = 'zset', TREM = 'zset', IADD = 'zset', IREM = 'zset'}
local fixes, flags = {}, {}
for pos = 2, #ARGV, 9 do
  local fix = {op = ARGV[pos], key = KEYS[tonumber(ARGV[pos + 1])], member = ARGV[pos + 2], score = ARGV[pos + 3],
               field = ARGV[pos + 6]}
  local pk, belief = ARGV[pos + 4], ARGV[pos + 5]
  local holds = true
  if belief == 'a' then
    holds = redis.call('HEXISTS', KEYS[2], pk) == 0
  elseif belief == 'e' then
    holds = redis.call('HEXISTS', KEYS[2], pk) == 1
  elseif belief == 'b' then
    holds = redis.call('HGET', KEYS[2], pk) == ARGV[pos + 8]
  elseif belief == 's' or belief == 'z' then
    local n = redis.call('SCARD', KEYS[tonumber(ARGV[pos + 8])])
    holds = (belief == 's') == (n > 0)
  elseif belief == 'f' then
    local blob = redis.call('HGET', KEYS[2], pk)
    local ok, record = false, nil
    if blob then ok, record = pcall(read_record, KEYS[3], blob) end
    holds = ok and matches(record[ARGV[pos + 6]], ARGV[pos + 7], ARGV[pos + 8])
  end
  local kind = redis.call('TYPE', fix.key)['ok']
  if holds and (kind == 'none' or kind == types[fix.op]) then
    fixes[#fixes + 1] = fix
    flags[#flags + 1] = '1'
  else
    flags[#flags + 1] = '0'
  end
end

if #fixes > 0 and redis.call('EXISTS', KEYS[4]) == 1 then redis.call('HINCRBY', KEYS[4], '_w', 1) end
for _, fix in ipairs(fixes) do
  if fix.op == 'MAX' then
    local now = tonumber(redis.call('GET', fix.key) or '0')
    if not now or now < tonumber(fix.member) then redis.call('SET', fix.key, fix.member) end
  elseif fix.op == 'DADD' or fix.op == 'DREM' or fix.op == 'TADD' or fix.op == 'TREM' then
    if fix.op == 'DADD' then redis.call('ZADD', fix.key, 0, fix.member)
    elseif fix.op == 'DREM' then redis.call('ZREM', fix.key, fix.member)
    elseif fix.op == 'TADD' then dict_add(fix.key, fix.member)
    else dict_remove(fix.key, fix.member) end
    dict_bump(KEYS[tonumber(fix.score)], fix.field)
  elseif fix.op == 'IADD' then
    id_add(fix.key, fix.member)
  elseif fix.op == 'IREM' then
    id_remove(fix.key, fix.member)
  elseif fix.op == 'ZADD' then
    redis.call('ZADD', fix.key, fix.score, fix.member)
  else
    redis.call(fix.op, fix.key, fix.member)
  end
end
return {1, table.concat(flags)}
