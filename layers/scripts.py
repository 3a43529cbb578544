"""Lua scripts run inside Redis, so each batch costs one round trip per shard.

Queue entries are ``<deadline ms, 13 digits><channel>\\n<msgpack payload>``: the deadline
lets a full queue shed expired heads before refusing a message, and the channel name
lets one process queue carry all of a process's ``!`` channels.
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

# KEYS: queue keys (may repeat). ARGV: now_ms, ttl_ms, then capacity and entry per key.
SEND = (
    _TRIM
    + """
local now = tonumber(ARGV[1])
local ttl = ARGV[2]
local out = {}
for i, key in ipairs(KEYS) do
  local cap = tonumber(ARGV[1 + 2 * i])
  local n = redis.call('LLEN', key)
  if n >= cap then n = trim(key, n, now) end
  if n < cap then
    redis.call('RPUSH', key, ARGV[2 + 2 * i])
    redis.call('PEXPIRE', key, ttl)
    out[i] = 1
  else
    out[i] = 0
  end
end
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

# KEYS[1]: the group's sorted set. ARGV: now_ms, ttl_ms, membership cutoff ms, queue key
# prefix (keys are ``<prefix>{<tag>}:<queue>``, the tag being the process id of a ``!``
# queue and the name of any other), entry head (deadline), payload, default capacity,
# process capacity, a marker of process queues to skip ("" for none; the sender delivers
# to those itself), then pairs of (Lua pattern, capacity) checked in order.
# Returns {members reached, members skipped as full, lapsed memberships removed}.
GROUP_SEND = (
    _TRIM
    + """
local now = tonumber(ARGV[1])
local ttl = ARGV[2]
local qprefix = ARGV[4]
local head = ARGV[5]
local payload = ARGV[6]
local default_cap = tonumber(ARGV[7])
local process_cap = tonumber(ARGV[8])
local skip = ARGV[9]
local lapsed = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local sent = 0
local full = 0
for _, channel in ipairs(members) do
  local bang = string.find(channel, '!', 1, true)
  local queue = channel
  local cap = default_cap
  local tag = channel
  if bang then
    queue = string.sub(channel, 1, bang)
    tag = string.match(queue, '([^.]*)!$')
    cap = process_cap
  end
  if not (bang and skip ~= '' and string.find(queue, skip, 1, true)) then
    for p = 10, #ARGV - 1, 2 do
      if string.find(queue, ARGV[p]) then
        cap = tonumber(ARGV[p + 1])
        break
      end
    end
    local key = qprefix .. '{' .. tag .. '}:' .. queue
    local n = redis.call('LLEN', key)
    if n >= cap then n = trim(key, n, now) end
    if n < cap then
      redis.call('RPUSH', key, head .. channel .. '\\n' .. payload)
      redis.call('PEXPIRE', key, ttl)
      sent = sent + 1
    else
      full = full + 1
    end
  end
end
return {sent, full, lapsed}
"""
)

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
