-- Record a primary on the bus at a new epoch, only upwards: when there is no
-- record yet or the one there has a lower epoch. Used to announce a new
-- primary (fenced by the change lock: a worker that was stopped past the
-- lock's TTL cannot announce anything; one promotion per epoch, since a
-- second job for the same epoch finds the record already there) and to
-- restore a bus from the databases (no lock: ARGV[2] is '').
-- The epoch counter only rises.
-- A record the caller read and did not trust (forged: not signed with the bus
-- key, which Lua cannot check) is passed as ARGV[3] and replaced whatever its
-- epoch, but only if it is still exactly that value.
-- KEYS: primary, epoch, change lock. ARGV: record JSON (with its epoch), lock value or '', untrusted value or ''.
-- Returns the epoch written, 0 when the bus already has this epoch or a
-- later one, -1 when the lock is not (or no longer) the caller's.
if ARGV[2] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[2] then return -1 end
local record = cjson.decode(ARGV[1])
local current = redis.call('GET', KEYS[1])
if current and not (ARGV[3] ~= '' and current == ARGV[3]) then
  local ok, parsed = pcall(cjson.decode, current)
  if ok and type(parsed) == 'table' and tonumber(parsed['epoch']) and tonumber(parsed['epoch']) >= record['epoch'] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
local counter = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
if counter < record['epoch'] then redis.call('SET', KEYS[2], record['epoch']) end
return record['epoch']
