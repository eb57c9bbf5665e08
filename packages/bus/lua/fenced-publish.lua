-- Publish one event while holding the monitor lease: check the leader key,
-- then XADD (capped), SET topology for snapshots, and PUBLISH -- atomically,
-- so a monitor that lost its lease cannot slip an event in after its successor.
-- KEYS: leader, stream, topology. ARGV: instance, channel, event, maxlen, isSnapshot.
-- Returns 1 when published, 0 when this instance is not the leader.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'event', ARGV[3])
if ARGV[5] == '1' then redis.call('SET', KEYS[3], ARGV[3]) end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
