-- Renew only our own lease. KEYS: leader. ARGV: instance, ttlMs.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
