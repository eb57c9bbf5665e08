-- Allocate the next seq of a term. KEYS: seq counter.
-- The counter expires a day after the term's last event.
local s = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], 86400000)
return s
