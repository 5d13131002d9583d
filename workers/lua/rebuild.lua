-- Slots.reload (workers/slots.py), atomic; __PREFIX__ becomes orchestrator.constants.KEY_PREFIX
-- ARGV: expiry_ms, JSON {"limits": {label: slots}, "holders": [[run, parent or '', [label...]]]}
-- Loads the limits from the database's copy and gives the Running runs their slots
-- back, unless another worker did it first; returns 1 when it loaded them
local P = '__PREFIX__'
if redis.call('EXISTS', P .. 'limits:loaded') == 1 then return 0 end
local expiry = tonumber(ARGV[1])
local data = cjson.decode(ARGV[2])
redis.call('DEL', P .. 'limits')
for label, slots in pairs(data['limits']) do
  redis.call('HSET', P .. 'limits', label, slots)
end
for _, h in ipairs(data['holders']) do
  local run, parent = h[1], h[2]
  if parent ~= '' then
    redis.call('SET', P .. 'parent:' .. run, parent, 'PX', 7 * 24 * 3600 * 1000)
  end
  for _, label in ipairs(h[3]) do
    redis.call('ZADD', P .. 'slots:' .. label, 'NX', expiry, run)
    redis.call('SADD', P .. 'held:' .. run, label)
  end
end
redis.call('SET', P .. 'limits:loaded', '1')
return 1
