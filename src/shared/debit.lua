-- Debits one request from the shared budget of one endpoint, atomically.
--
-- KEYS[1]: a sorted set of this endpoint's debits; each score is the server time of the
--          debit in microseconds since the Unix epoch.
-- ARGV[1]: how long the probe may take, in microseconds. The debit is scored that far ahead,
--          as if the probe ended as late as it could, until settle.lua moves it to the real
--          end. A replica that dies mid-probe thus leaves a debit that never frees early.
-- ARGV[2..]: pairs of (span in microseconds, budget), one pair per window. The span is the
--          window; a debit scored t counts in a window while now - t < span.
--
-- Returns {1, now, suffix} when the debit was recorded under the member now (suffix 0) or
-- now-suffix, or {0, wait} when some window is full and its oldest blocking debit leaves
-- after wait microseconds (at most its span).
--
-- Lua 5.1 prints numbers with 14 significant digits, and microsecond timestamps have 16,
-- so every number sent back to Redis as text goes through string.format('%d').

local key = KEYS[1]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

local pending = tonumber(ARGV[1])
local longest = 0
for i = 2, #ARGV, 2 do
  local span = tonumber(ARGV[i])
  if span > longest then
    longest = span
  end
end

-- Debits at or before now - longest count in no window any more.
redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%d', now - longest))

local wait = 0
for i = 2, #ARGV, 2 do
  local span = tonumber(ARGV[i])
  local budget = tonumber(ARGV[i + 1])
  local start = string.format('(%d', now - span)
  local count = redis.call('ZCOUNT', key, start, '+inf')
  if count >= budget then
    -- One more fits once the oldest count - budget + 1 debits in the window have left.
    local frees = now + span
    local blocking = redis.call('ZRANGEBYSCORE', key, start, '+inf', 'WITHSCORES',
      'LIMIT', count - budget, 1)
    if blocking[2] then
      frees = tonumber(blocking[2]) + span
    end
    -- A debit scored after now (the server clock stepped back) still blocks, but the wait
    -- reported for one window never exceeds its span.
    local window_wait = math.min(frees - now, span)
    if window_wait > wait then
      wait = window_wait
    end
  end
end
if wait > 0 then
  return {0, wait}
end

if longest > 0 then
  -- Two debits in the same microsecond get distinct members, so both count.
  local stamp = string.format('%d', now)
  local member = stamp
  local suffix = 0
  while redis.call('ZSCORE', key, member) do
    suffix = suffix + 1
    member = stamp .. '-' .. suffix
  end
  redis.call('ZADD', key, string.format('%d', now + pending), member)
  redis.call('PEXPIRE', key, string.format('%d', math.ceil((longest + pending) / 1000)))
  return {1, now, suffix}
end
return {1, now, 0}
