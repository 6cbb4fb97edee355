-- The lease that lets one refresh runner at a time work on a model.
-- KEYS: 1 lease key.  ARGV: 1 'acquire' | 'renew' | 'release', 2 the runner's token,
--   3 the lease's time to live in ms (acquire, renew).
-- Reply: {1} held (or released) | {0, holder's token, its remaining ms} held by another.
local holder = redis.call('GET', KEYS[1])
local op, token = ARGV[1], ARGV[2]
if op == 'release' then
  if holder == token then redis.call('DEL', KEYS[1]) end
  return {1}
end
if holder == token or (op == 'acquire' and not holder) then
  redis.call('SET', KEYS[1], token, 'PX', tonumber(ARGV[3]))
  return {1}
end
return {0, holder or '', redis.call('PTTL', KEYS[1])}
