-- Signup POSTs for wrk, driven by bench/signup.py:
--   wrk ... -s bench/signup.lua URL -- CSRF_COOKIE CSRF_TOKEN TOPIC_IDS INTEREST_EVERY TAG
-- Every request has an address of its own (run tag, thread, counter), so no request is
-- refused by the per-address limit or folded into an earlier subscriber.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_id", #threads)
end

local function split(text)
  local parts = {}
  for part in string.gmatch(text, "[^,]+") do
    table.insert(parts, part)
  end
  return parts
end

local function urlencode(text)
  return (string.gsub(text, "[^%w%-%._~]", function(char)
    return string.format("%%%02X", string.byte(char))
  end))
end

-- Phrases subscribers type. Each is made unique per request below, so every interest
-- creates a topic: the worst case for a signup, which then rescores recent papers.
local phrases = {
  "world models", "protein folding", "graph transformers", "speculative decoding",
  "mixture of experts", "diffusion policies", "retrieval augmented generation",
  "sparse autoencoders", "code generation agents", "video generation",
  "reward modelling", "state space models", "federated learning", "model merging",
}

function init(args)
  cookie, token, topics = args[1], args[2], split(args[3])
  interest_every, tag = tonumber(args[4]), args[5]
  sent, ok, other = 0, 0, 0
  math.randomseed(thread_id * 7919)
end

function request()
  sent = sent + 1
  local first = math.random(#topics)
  local second = math.random(#topics - 1)
  if second >= first then
    second = second + 1
  end
  local fields = {
    "csrfmiddlewaretoken=" .. token,
    "email=" .. urlencode(string.format("%s-%d-%d@bench.example", tag, thread_id, sent)),
    "website=",
    "topics=" .. topics[first],
    "topics=" .. topics[second],
    "frequency=" .. (math.random(4) == 1 and "weekly" or "daily"),
    "weekday=" .. (math.random(7) - 1),
    "send_hour=" .. (math.random(24) - 1),
    "timezone=" .. urlencode("Europe/Berlin"),
    "max_papers=10",
  }
  if interest_every > 0 and sent % interest_every == 0 then
    local phrase = phrases[math.random(#phrases)]
    table.insert(fields, "interests=" .. urlencode(string.format("%s %s%dn%d", phrase, tag, thread_id, sent)))
  else
    table.insert(fields, "interests=")
  end
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Cookie"] = "csrftoken=" .. cookie,
  }, table.concat(fields, "&"))
end

function response(status, headers, body)
  if status >= 200 and status < 400 then
    ok = ok + 1
  else
    other = other + 1
    if other <= 3 then
      io.stderr:write(string.format("signup answered %d: %s\n", status, string.sub(body, 1, 300)))
    end
  end
end

-- One line bench/signup.py reads: requests written, and answers by class. Requests in
-- flight when the duration ends are written but never answered (wrk drops them).
function done(summary, latency, requests)
  local total_sent, total_ok, total_other = 0, 0, 0
  for _, thread in ipairs(threads) do
    total_sent = total_sent + thread:get("sent")
    total_ok = total_ok + thread:get("ok")
    total_other = total_other + thread:get("other")
  end
  io.write(string.format("signup-counts sent=%d ok=%d other=%d\n", total_sent, total_ok, total_other))
end
