-- Take the lease and bump the term in one step: when it is free, or when it
-- still names this instance (a lease this instance gave up locally, Redis
-- being away, or whose renewal a failed-over Redis lost: it leads again at
-- once, under a new term). The term never goes below ARGV[3] (the highest
-- this instance saw: a Redis that lost its data must not send terms
-- backwards). A stored term that is not an integer, or more than ARGV[4]
-- above that floor, was not written by a monitor (terms move by one per
-- lease taken): it is replaced by the floor and reported, so one SET from
-- someone without the bus key cannot stop every monitor from leading or push
-- terms past what a client can count.
-- KEYS: leader, term. ARGV: instance, ttlMs, minTerm, maxJump.
-- Returns {new term, 1 when a forged term was replaced else 0}; {0, 0} when
-- another instance holds the lease.
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return {0, 0} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local floor = tonumber(ARGV[3])
local raw = redis.call('GET', KEYS[2])
local stored = tonumber(raw or '0')
local forged = 0
if raw and (stored == nil or stored ~= math.floor(stored) or stored < 0 or stored > floor + tonumber(ARGV[4])) then
  forged = 1
  stored = floor - 1
end
local t = stored + 1
if t < floor then t = floor end
redis.call('SET', KEYS[2], t)
return {t, forged}
