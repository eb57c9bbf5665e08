-- Delete a key only if it still holds our value (a lease, a lock).
-- KEYS: key. ARGV: value. Returns 1 when deleted.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
