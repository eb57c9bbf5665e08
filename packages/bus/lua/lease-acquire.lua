-- Take a free lease and bump the term in one step; the term never goes below
-- ARGV[3] (the highest this instance saw: a Redis that lost its data must not
-- send terms backwards). KEYS: leader, term. ARGV: instance, ttlMs, minTerm.
-- Returns the new term, or 0 when another instance holds the lease.
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
local t = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[3])
if t < floor then t = floor; redis.call('SET', KEYS[2], t) end
return t
