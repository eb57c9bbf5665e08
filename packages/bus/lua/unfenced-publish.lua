-- Publish one event without a lease (the worker, the CLI).
-- KEYS: stream. ARGV: channel, event, maxlen. Returns 1.
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'event', ARGV[2])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
