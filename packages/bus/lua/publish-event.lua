-- Publish one event: allocate its seq and publish it in one atomic step, so
-- events reach the stream and the channel in (term, seq) order whoever
-- publishes them (the monitor leader, the worker, the CLI).
-- The caller signed the event with the seq and term it expects; if another
-- publisher took that seq, or the term changed, nothing is published and the
-- caller re-signs with the values returned.
-- KEYS: leader, stream, topology, term, seq counter of the term.
-- ARGV: instance (leader check; '' for a publisher without a lease), channel,
--       event, maxlen, isSnapshot ('1'/'0'), term, seq.
-- Returns {1, seq} published; {0, 0} not the leader; {-1, next seq, current term} conflict.
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0, 0} end
local term = tonumber(redis.call('GET', KEYS[4]) or '0') or 0
local current = tonumber(redis.call('GET', KEYS[5]) or '0') or 0
if ARGV[1] == '' and term ~= tonumber(ARGV[6]) then return {-1, 1, term} end
-- The leader's term is not Redis's, or it expects a seq past the counter:
-- Redis lost what it wrote (a failover to a replica that was behind). Never
-- reuse those seqs: not the leader now; its next renewal fails and it takes
-- a new term.
if ARGV[1] ~= '' and (term ~= tonumber(ARGV[6]) or tonumber(ARGV[7]) > current + 1) then return {0, 0} end
if tonumber(ARGV[7]) ~= current + 1 then return {-1, current + 1, term} end
redis.call('SET', KEYS[5], ARGV[7], 'PX', 86400000)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'event', ARGV[3])
if ARGV[5] == '1' then redis.call('SET', KEYS[3], ARGV[3]) end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return {1, tonumber(ARGV[7])}
