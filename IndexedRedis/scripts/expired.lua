-- List a bounded batch of a TTL model's expired objects, for a sweep to delete (see
-- expiry.py); changes nothing.
-- KEYS: 1 generation pointer, 2 objs hash, 3 expiry zset.
-- ARGV: 1 expected generation, 2 how many at most.
-- Reply: {1, {pk...}, {record or false...}, how many are expired in all} | {0, generation}

local gen = current_gen(KEYS[1])
if gen ~= ARGV[1] then return {0, gen} end
local now = server_ms()
local pks = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local records = #pks > 0 and redis.call('HMGET', KEYS[2], unpack(pks)) or {}
return {1, pks, records, redis.call('ZCOUNT', KEYS[3], '-inf', now)}
