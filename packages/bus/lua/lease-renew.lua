-- Renew only our own lease, and only while Redis still holds what we wrote
-- under it: our term, and a seq counter of that term at least at the last
-- seq we published. A Redis failover that lost our writes (the new master
-- was behind) ends the lease here: the caller takes a new term instead of
-- reusing seqs it already published.
-- KEYS: leader, term, seq counter of our term. ARGV: instance, ttlMs, term, last seq published.
-- Returns 1 when renewed, 0 when not ours, -1 when ours but Redis lost our writes.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local term = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
local seq = tonumber(redis.call('GET', KEYS[3]) or '0') or 0
if term ~= tonumber(ARGV[3]) or seq < tonumber(ARGV[4]) then return -1 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
