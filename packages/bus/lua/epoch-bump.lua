-- Move the primary record to a new primary and bump the epoch, only if the
-- record is still at the expected epoch (compare-and-set), so two jobs for one
-- epoch cannot both succeed. KEYS: primary, epoch. ARGV: expected epoch, new
-- record JSON (its epoch is replaced). Returns the new epoch, or 0.
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
if cjson.decode(current)['epoch'] ~= tonumber(ARGV[1]) then return 0 end
local e = redis.call('INCR', KEYS[2])
if e <= tonumber(ARGV[1]) then e = tonumber(ARGV[1]) + 1; redis.call('SET', KEYS[2], e) end
local record = cjson.decode(ARGV[2])
record['epoch'] = e
redis.call('SET', KEYS[1], cjson.encode(record))
return e
