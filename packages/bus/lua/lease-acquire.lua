-- Take the lease and bump the term in one step: when it is free, or when it
-- still names this instance (a lease this instance gave up locally, Redis
-- being away, or whose renewal a failed-over Redis lost: it leads again at
-- once, under a new term). The term never goes below ARGV[3] (the highest
-- this instance saw: a Redis that lost its data must not send terms
-- backwards). KEYS: leader, term. ARGV: instance, ttlMs, minTerm.
-- Returns the new term, or 0 when another instance holds the lease.
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local t = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[3])
if t < floor then t = floor; redis.call('SET', KEYS[2], t) end
return t
