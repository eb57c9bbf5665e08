-- Record (or forget) the promotion progress of an epoch, fenced by the change
-- lock: only while the caller still holds it, so a run that stalled past the
-- lock's TTL and woke up after another run took over cannot name a candidate
-- (and then promote it) behind that run's back. A compare-and-set on the value
-- the caller read (and checked: one candidate per epoch), so a record written
-- in between is never replaced.
-- KEYS: change lock, progress key.
-- ARGV: lock value, mode ('compare' with the value read, 'any', or 'refuse': the
-- caller found another candidate recorded), the value read ('' when absent),
-- the new value ('' to forget), ttlMs.
-- Returns 1 when written (or forgotten), 0 when refused or the record changed
-- since it was read, -1 when the lock is not (or no longer) the caller's: that
-- is checked first, so a stalled run learns it lost the lock.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if ARGV[2] == 'refuse' then return 0 end
if ARGV[2] == 'compare' and (redis.call('GET', KEYS[2]) or '') ~= ARGV[3] then return 0 end
if ARGV[4] == '' then
  redis.call('DEL', KEYS[2])
else
  redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[5])
end
return 1
