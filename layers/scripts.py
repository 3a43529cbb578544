"""Lua scripts run inside Redis, so each batch costs one round trip per shard.

Queue entries are ``<deadline ms, 13 digits><target>\\n<msgpack payload>``: the deadline
lets a full queue shed expired heads before refusing a message, and the target (a channel
name, or several addresses of one process for a group send) lets one process queue carry
all of a process's ``!`` channels.
"""

# Drop expired entries from the head of a full queue; returns the new length.
_TRIM = """
local function trim(key, n, now)
  local guard = 0
  while n > 0 and guard < 1000 do
    local head = redis.call('LINDEX', key, 0)
    if tonumber(string.sub(head, 1, 13)) > now then break end
    redis.call('LPOP', key)
    n = n - 1
    guard = guard + 1
  end
  return n
end
"""

# Appends an entry unless the queue is full after shedding expired heads; true if it did.
_PUSH = """
local shed = 0
local function push(key, cap, entry, now, ttl)
  local n = redis.call('LLEN', key)
  if n >= cap then
    local left = trim(key, n, now)
    shed = shed + n - left
    n = left
  end
  if n >= cap then return false end
  redis.call('RPUSH', key, entry)
  redis.call('PEXPIRE', key, ttl)
  return true
end
"""

# True when a process was seen alive and its heartbeat has lapsed or been withdrawn.
# ``kp`` is the key prefix; liveness keys carry the process id as their hash tag. A live
# process (the common case) costs one EXISTS.
_DEAD = """
local dead_cache = {}
local function dead(kp, proc)
  local known = dead_cache[proc]
  if known == nil then
    known = redis.call('EXISTS', kp .. 'live:{' .. proc .. '}') == 0
      and redis.call('EXISTS', kp .. 'seen:{' .. proc .. '}') == 1
    dead_cache[proc] = known
  end
  return known
end
"""

# KEYS: distinct queue keys. ARGV: now_ms, ttl_ms, key prefix, then per key its capacity,
# its process id ("" for a plain queue) and how many entries it gets, then every entry,
# key by key in KEYS order. One LLEN, one RPUSH of every entry that fits and one PEXPIRE
# per key, however many entries the batch has for it. Returns per key how many of its
# entries (the first ones) were pushed, or -1 if its process is dead; then how many
# expired entries full queues shed.
SEND = (
    _TRIM
    + _DEAD
    + """
local now = tonumber(ARGV[1])
local ttl = ARGV[2]
local kp = ARGV[3]
local out = {}
local shed = 0
local first = 4 + 3 * #KEYS
for k, key in ipairs(KEYS) do
  local cap = tonumber(ARGV[1 + 3 * k])
  local proc = ARGV[2 + 3 * k]
  local count = tonumber(ARGV[3 + 3 * k])
  if proc ~= '' and dead(kp, proc) then
    out[k] = -1
  else
    local n = redis.call('LLEN', key)
    if n + count > cap and n > 0 then
      local left = trim(key, n, now)
      shed = shed + n - left
      n = left
    end
    local room = math.max(0, math.min(count, cap - n))
    for j = 0, room - 1, 1000 do
      redis.call('RPUSH', key, unpack(ARGV, first + j, first + math.min(j + 999, room - 1)))
    end
    if room > 0 then redis.call('PEXPIRE', key, ttl) end
    out[k] = room
  end
  first = first + count
end
out[#KEYS + 1] = shed
return out
"""
)

# KEYS: queue keys in the order to try. ARGV: the most entries to take.
POP = """
local need = tonumber(ARGV[1])
local out = {}
for _, key in ipairs(KEYS) do
  if need <= 0 then break end
  local got = redis.call('LPOP', key, need)
  if got then
    for _, entry in ipairs(got) do out[#out + 1] = entry end
    need = need - #got
  end
end
return out
"""

# Removes members in slices (Lua's unpack has a stack limit).
_ZREM_ALL = """
local function zrem_all(key, members)
  for i = 1, #members, 1000 do
    redis.call('ZREM', key, unpack(members, i, math.min(i + 999, #members)))
  end
end
"""

# KEYS[1]: the group's sorted set (member -> join time). ARGV: now_ms, ttl_ms, membership
# cutoff ms, key prefix (a queue's key is ``<prefix>q:{<tag>}:<queue>``, the tag being the
# process id of a ``!`` queue and the name of any other), entry head (deadline), payload,
# default capacity, process capacity, the process whose members the sender serves itself
# ("" for none), then pairs of (Lua pattern, capacity) for plain channels, checked in order.
# Every member process gets one entry naming all its members (``names.join_addresses``);
# members of dead processes are removed. Returns {members reached, members skipped as full,
# lapsed memberships removed, members of dead processes removed, expired entries shed}.
GROUP_SEND = (
    _TRIM
    + _PUSH
    + _DEAD
    + _ZREM_ALL
    + """
local now = tonumber(ARGV[1])
local ttl = ARGV[2]
local kp = ARGV[4]
local head = ARGV[5]
local payload = ARGV[6]
local default_cap = tonumber(ARGV[7])
local process_cap = tonumber(ARGV[8])
local mine = ARGV[9]
local lapsed = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local sent, full, gone = 0, 0, 0
local procs, order = {}, {}
for _, channel in ipairs(members) do
  local bang = string.find(channel, '!', 1, true)
  if bang then
    local prefix = string.sub(channel, 1, bang)
    local tag = string.match(prefix, '([^.]*)!$')
    local p = procs[tag]
    if not p then
      p = {members = {}, parts = {}, last = ''}
      procs[tag] = p
      order[#order + 1] = tag
    end
    p.members[#p.members + 1] = channel
    if prefix == p.last then
      p.parts[#p.parts + 1] = string.sub(channel, bang + 1)
    else
      p.parts[#p.parts + 1] = channel
      p.last = prefix
    end
  else
    local cap = default_cap
    for i = 10, #ARGV - 1, 2 do
      if string.find(channel, ARGV[i]) then
        cap = tonumber(ARGV[i + 1])
        break
      end
    end
    local entry = head .. channel .. '\\n' .. payload
    if push(kp .. 'q:{' .. channel .. '}:' .. channel, cap, entry, now, ttl) then
      sent = sent + 1
    else
      full = full + 1
    end
  end
end
for _, tag in ipairs(order) do
  local p = procs[tag]
  local n = #p.members
  if dead(kp, tag) then
    zrem_all(KEYS[1], p.members)
    gone = gone + n
  elseif tag ~= mine then
    local entry = head .. table.concat(p.parts, ',') .. '\\n' .. payload
    if push(kp .. 'q:{' .. tag .. '}:' .. tag .. '!', process_cap, entry, now, ttl) then
      sent = sent + n
    else
      full = full + n
    end
  end
end
return {sent, full, lapsed, gone, shed}
"""
)

# KEYS[1]: a group's sorted set. ARGV: membership cutoff ms, key prefix. Removes lapsed
# members and those of dead processes; returns the rest.
GROUP_MEMBERS = (
    _DEAD
    + _ZREM_ALL
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local live, gone = {}, {}
for _, channel in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local tag = string.match(channel, '([^.!]*)!')
  if tag and dead(ARGV[2], tag) then
    gone[#gone + 1] = channel
  else
    live[#live + 1] = channel
  end
end
zrem_all(KEYS[1], gone)
return live
"""
)

# KEYS: a process's liveness key and its seen key. ARGV: liveness ms, seen ms, "1" to
# beat or "0" to withdraw. Returns 1 if the process was alive before.
HEARTBEAT = """
local was = redis.call('EXISTS', KEYS[1])
if ARGV[3] == '1' then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
else
  redis.call('DEL', KEYS[1])
end
return was
"""

_LUA_MAGIC = set("^$()%.[]*+-?")


def glob_to_lua(pattern: str) -> str:
    """Translate an fnmatch-style glob (``*``, ``?``, ``[...]``) into an anchored Lua pattern."""
    out = ["^"]
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[" and "]" in pattern[i + 2 :]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("%", "%%") + "]")
            i = end
        elif c in _LUA_MAGIC:
            out.append("%" + c)
        else:
            out.append(c)
        i += 1
    out.append("$")
    return "".join(out)
