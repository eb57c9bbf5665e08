-- Extend a key's TTL only if it still holds our value (the change lock).
-- KEYS: key. ARGV: value, ttlMs. Returns 1 when extended.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
