-- Take the change lock: when it is free, or when the holder is the same job
-- (BullMQ re-delivered it after its worker died or stalled). Every grant gets
-- a new fencing token, so a stalled holder's later steps are refused.
-- KEYS: lock, token counter. ARGV: job id, ttlMs.
-- Returns the lock value "<token>|<job id>", or false when another job holds it.
local current = redis.call('GET', KEYS[1])
if current then
  local sep = string.find(current, '|', 1, true)
  if not sep or string.sub(current, sep + 1) ~= ARGV[1] then return false end
end
local token = redis.call('INCR', KEYS[2])
local value = token .. '|' .. ARGV[1]
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return value
