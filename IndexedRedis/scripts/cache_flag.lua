-- Renew this process's member of a model's cache flag: while the flag exists, writes
-- touch the stamps of the objects they change (see save.lua).  Members of processes
-- that stopped renewing are dropped; the whole flag expires ARGV[2] ms after its
-- last renewal, so a model nobody caches costs writers nothing but one EXISTS.
-- KEYS: 1 the cache flag (a sorted set: member -> last renewal, server ms)
-- ARGV: 1 member, 2 time to live (ms)
-- Reply: 1

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
