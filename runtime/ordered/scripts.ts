/*
 * Redis scripts behind ordered handlers, one chain per (handler, client, epoch).
 * Atomic, so two workers can never both see "my predecessor is done" for events
 * that must run one after the other.
 *
 * KEYS[1] hash  `c`: seq of the last event finished (0: none yet)
 *               `s:<p>`: seq of an event the handler does not want (topic filter) whose prev is p
 *               `p:<p>`: BullMQ job id of the event parked until p is finished
 *               `g:<a>`: `<b>` — seqs in (a, b] were jumped over after the gap timeout
 * KEYS[2] zset  seqs seen and not finished (running, retrying or parked)
 * KEYS[3] string the (handler, client) lock: one run at a time, whatever the epoch
 *
 * Lua numbers print as integers up to 1e14, far beyond a connection's seq.
 */

/** Moves the cursor `c` past pass-through events, stores it, and hands back the job parked on it. */
const ADVANCE = `
local function advance(c, ttl)
  while true do
    local s = redis.call('HGET', KEYS[1], 's:' .. c)
    if not s then break end
    redis.call('HDEL', KEYS[1], 's:' .. c)
    c = tonumber(s)
  end
  redis.call('HSET', KEYS[1], 'c', c)
  redis.call('EXPIRE', KEYS[1], ttl)
  local job = redis.call('HGET', KEYS[1], 'p:' .. c)
  if job then redis.call('HDEL', KEYS[1], 'p:' .. c) end
  return job
end
`

/**
 * ARGV: seq, prev (-1: unknown, lock only), token, lockMs, jobId to park under prev ('' none),
 * force ('1': jump a gap if this is the oldest event seen), ttl seconds.
 * Returns run | forced | late | done | wait | busy.
 */
export const CLAIM = `
local seq = tonumber(ARGV[1])
local prev = tonumber(ARGV[2])
local ttl = ARGV[7]
local function lock()
  return redis.call('SET', KEYS[3], ARGV[3], 'NX', 'PX', ARGV[4])
end
if prev < 0 then
  if lock() then return 'run' end
  return 'busy'
end
local c = tonumber(redis.call('HGET', KEYS[1], 'c') or '0')
if seq <= c then
  local fields = redis.call('HGETALL', KEYS[1])
  for i = 1, #fields, 2 do
    local f = fields[i]
    if string.sub(f, 1, 2) == 'g:' and seq > tonumber(string.sub(f, 3)) and seq <= tonumber(fields[i + 1]) then
      if lock() then return 'late' end
      return 'busy'
    end
  end
  return 'done'
end
redis.call('ZADD', KEYS[2], seq, seq)
redis.call('EXPIRE', KEYS[2], ttl)
local result = 'run'
if prev ~= c then
  local oldest = tonumber(redis.call('ZRANGE', KEYS[2], 0, 0)[1])
  if ARGV[6] == '1' and oldest == seq then
    redis.call('HSET', KEYS[1], 'g:' .. c, prev, 'c', prev)
    redis.call('EXPIRE', KEYS[1], ttl)
    result = 'forced'
  else
    if ARGV[5] ~= '' then
      redis.call('HSET', KEYS[1], 'p:' .. prev, ARGV[5])
      redis.call('EXPIRE', KEYS[1], ttl)
    end
    return 'wait'
  end
end
if lock() then return result end
return 'busy'
`

/** ARGV: seq, token, advance ('1': the event is finished in its chain), ttl. Returns the job id to promote, or nil. */
export const FINISH = `${ADVANCE}
if redis.call('GET', KEYS[3]) == ARGV[2] then redis.call('DEL', KEYS[3]) end
if ARGV[3] ~= '1' then return false end
local seq = tonumber(ARGV[1])
redis.call('ZREM', KEYS[2], seq)
local c = tonumber(redis.call('HGET', KEYS[1], 'c') or '0')
if seq > c then c = seq end
return advance(c, ARGV[4])
`

/** An event the handler does not want, in the chain all the same. ARGV: seq, prev, ttl. Returns the job id to promote, or nil. */
export const PASS = `${ADVANCE}
local seq = tonumber(ARGV[1])
local prev = tonumber(ARGV[2])
local c = tonumber(redis.call('HGET', KEYS[1], 'c') or '0')
if seq <= c then return false end
if prev ~= c then
  redis.call('HSET', KEYS[1], 's:' .. prev, seq)
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  return false
end
return advance(seq, ARGV[3])
`

/** KEYS[1] the lock. ARGV: token, lockMs ('0': release). Returns 1 while the token holds it. */
export const RENEW = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '0' then redis.call('DEL', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
`
