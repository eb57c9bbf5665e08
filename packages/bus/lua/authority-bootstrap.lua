-- Record the first primary: only if no record exists, with an epoch above both
-- the counter and ARGV[2] (what the caller saw before: a Redis that lost its
-- data must not send the epoch backwards).
-- KEYS: primary, epoch. ARGV: record JSON (its epoch is replaced), minimum epoch.
-- Returns the epoch, or 0 when a record already exists.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local e = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[2])
if e < floor then e = floor; redis.call('SET', KEYS[2], e) end
local record = cjson.decode(ARGV[1])
record['epoch'] = e
redis.call('SET', KEYS[1], cjson.encode(record))
return e
