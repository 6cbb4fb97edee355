-- check: whether a batch of records has every index entry it implies.  Read-only.
-- The client read the records (HSCAN) and names the entries each implies; a record
-- that changed since is skipped (a save kept its entries exact).
--
-- KEYS: 1 generation pointer, 2 objs hash, then the index keys, by number
-- ARGV: 1 expected generation, then per record: pk, the record as read, check count c,
--   then c checks of (what, key number, value):
--     'S' the pk is a member of the set | 'I' the ids zset holds the pk (lib.lua)
--     'Z' the zset scores the padded pk by the value | 'A' the zset does not hold the
--     padded pk | 'X' the zset holds the member given
-- Reply: {1, {record number, check number, seen...}} for each failed check, where seen
--   is '' (missing), a score, 'T' (the key holds another type); check number 0 with
--   'C': the record changed since it was read | {0, generation}

local gen = current_gen(KEYS[1])
if gen ~= ARGV[1] then return {0, gen} end

local failed = {}
local function fail(r, c, seen)
  failed[#failed + 1] = r
  failed[#failed + 1] = c
  failed[#failed + 1] = seen
end

local pos, r = 2, 0
while pos <= #ARGV do
  r = r + 1
  local pk, blob, count = ARGV[pos], ARGV[pos + 1], tonumber(ARGV[pos + 2])
  pos = pos + 3
  if redis.call('HGET', KEYS[2], pk) ~= blob then
    fail(r, 0, 'C')
    pos = pos + 3 * count
  else
    local padded = pad_pk(pk)
    for c = 1, count do
      local what, key, value = ARGV[pos], KEYS[tonumber(ARGV[pos + 1])], ARGV[pos + 2]
      pos = pos + 3
      local reply
      if what == 'S' then
        reply = redis.pcall('SISMEMBER', key, pk)
        if type(reply) == 'table' then fail(r, c, 'T') elseif reply == 0 then fail(r, c, '') end
      elseif what == 'I' then
        local t = redis.call('TYPE', key)['ok']
        if t ~= 'none' and t ~= 'zset' then fail(r, c, 'T') elseif not id_has(key, pk) then fail(r, c, '') end
      else
        local member = padded
        if what == 'X' then member = value end
        reply = redis.pcall('ZSCORE', key, member)
        if type(reply) == 'table' then
          fail(r, c, 'T')
        elseif what == 'A' then
          if reply then fail(r, c, reply) end
        elseif not reply then
          fail(r, c, '')
        elseif what == 'Z' and tonumber(reply) ~= tonumber(value) then
          fail(r, c, reply)
        end
      end
    end
  end
end
return {1, failed}
