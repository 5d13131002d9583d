-- Slots.release (workers/slots.py), atomic; __PREFIX__ becomes orchestrator.constants.KEY_PREFIX
-- ARGV: run_id, max_woken, label... ; returns the runs to wake, oldest first
local run, wake = ARGV[1], tonumber(ARGV[2])
local P = '__PREFIX__'
local labels = redis.call('SMEMBERS', P .. 'held:' .. run)
for i = 3, #ARGV do table.insert(labels, ARGV[i]) end
local woken, seen = {}, {}
for _, label in ipairs(labels) do
  redis.call('ZREM', P .. 'slots:' .. label, run)
  redis.call('ZREM', P .. 'waiting:' .. label, run)
  for _, w in ipairs(redis.call('ZRANGE', P .. 'waiting:' .. label, 0, wake - 1)) do
    if not seen[w] then seen[w] = true; table.insert(woken, w) end
  end
end
redis.call('DEL', P .. 'held:' .. run, P .. 'parent:' .. run)
return woken
