-- Moves one debit to the server's current time, when the probe it paid for has ended.
--
-- KEYS[1]: the endpoint's sorted set of debits.
-- ARGV[1]: the member the debit was recorded under.
-- ARGV[2]: the key's expiry in milliseconds: the longest window plus the probe timeout, so
--          debits of probes still running elsewhere outlive it.
--
-- The API receives a request before its response arrives, so counting each debit from the
-- end of its probe means no replica's next request can reach the API less than a window
-- after this one, however long this one spent on the way. A debit that already expired is
-- left alone.

local key = KEYS[1]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
if redis.call('ZSCORE', key, ARGV[1]) then
  redis.call('ZADD', key, 'XX', string.format('%d', now), ARGV[1])
  redis.call('PEXPIRE', key, ARGV[2])
  return 1
end
return 0
