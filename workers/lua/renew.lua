-- Slots.renew (workers/slots.py), atomic; __PREFIX__ becomes orchestrator.constants.KEY_PREFIX
-- ARGV: run_id, expiry_ms ; renews the run's slots and those of the runs above it
local P = '__PREFIX__'
local up, expiry, depth = ARGV[1], tonumber(ARGV[2]), 0
while up and depth < 32 do
  for _, label in ipairs(redis.call('SMEMBERS', P .. 'held:' .. up)) do
    redis.call('ZADD', P .. 'slots:' .. label, 'XX', expiry, up)
  end
  up = redis.call('GET', P .. 'parent:' .. up)
  depth = depth + 1
end
return 1
