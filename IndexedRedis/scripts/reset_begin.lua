-- Start a reset: hand out a new generation, register it as being written under a
-- lease, and reserve the pks of the objects that have none (after any pk the others
-- bring).
-- KEYS: 1 generation counter, 2 staging zset, 3 pk counter, 4 schemas hash
-- ARGV: 1 how many objects need a pk, 2 the highest pk among the others (or 0),
--   3 the schema tag of the records to come, 4 its field names (msgpack array),
--   5 the lease in ms (every batch renews it)
-- Reply: {1, generation, first reserved pk, server time ms}
register_schema(KEYS[4], ARGV[3], ARGV[4])
local gen = redis.call('INCR', KEYS[1])
local now = server_ms()
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[5]), gen)
local top = math.max(tonumber(redis.call('GET', KEYS[3]) or '0'), tonumber(ARGV[2]))
redis.call('SET', KEYS[3], top + tonumber(ARGV[1]))
return {1, gen, top + 1, now}
