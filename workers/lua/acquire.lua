-- Slots.acquire (workers/slots.py), atomic; __PREFIX__ becomes orchestrator.constants.KEY_PREFIX
-- KEYS: none (keys are built from prefixes, as every label is dynamic)
-- ARGV: run_id, parent_id or '', now_ms, expiry_ms, arrival_ms, label...
local run, parent = ARGV[1], ARGV[2]
local now, expiry, arrival = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local P = '__PREFIX__'
local limits = P .. 'limits'
-- a Redis that lost the limits (flushed, restarted empty) loads them first
if redis.call('EXISTS', P .. 'limits:loaded') == 0 then return -1 end
if parent ~= '' then
  redis.call('SET', P .. 'parent:' .. run, parent, 'PX', 7 * 24 * 3600 * 1000)
end
-- labels held by an ancestor are exempt
local exempt = {}
local up = parent
local depth = 0
while up and up ~= '' and depth < 32 do
  for _, l in ipairs(redis.call('SMEMBERS', P .. 'held:' .. up)) do exempt[l] = true end
  up = redis.call('GET', P .. 'parent:' .. up)
  depth = depth + 1
end
local need = {}
for i = 6, #ARGV do
  local label = ARGV[i]
  local limit = redis.call('HGET', limits, label)
  if limit and not exempt[label] then table.insert(need, {label, tonumber(limit)}) end
end
local ok = true
for _, item in ipairs(need) do
  local slots = P .. 'slots:' .. item[1]
  redis.call('ZREMRANGEBYSCORE', slots, '-inf', now)
  if not redis.call('ZSCORE', slots, run) then
    if redis.call('ZCARD', slots) >= item[2] then ok = false end
    local older = redis.call('ZRANGEBYSCORE', P .. 'waiting:' .. item[1], '-inf', '(' .. arrival, 'LIMIT', 0, 1)
    if #older > 0 and older[1] ~= run then ok = false end
  end
end
if not ok then
  for _, item in ipairs(need) do
    redis.call('ZADD', P .. 'waiting:' .. item[1], 'NX', arrival, run)
  end
  return 0
end
for _, item in ipairs(need) do
  redis.call('ZADD', P .. 'slots:' .. item[1], expiry, run)
  redis.call('SADD', P .. 'held:' .. run, item[1])
  redis.call('ZREM', P .. 'waiting:' .. item[1], run)
end
return 1
