-- ingest.lua: wrk script for bench/ingest. Posts signed WhatsApp webhooks
-- from a file made up front (one "SIGNATURE BODY" per line, each body with
-- its own wamid), so signing costs the load generator nothing and every
-- request is a new message. Thread t of n takes lines t, t+n, t+2n, ...,
-- so no two threads send the same body; a thread that runs out of lines
-- starts again and counts the wrap (bench/ingest then fails the run,
-- since repeats are deduplicated, not stored, and would flatter the rate).
-- Environment: INGEST_BODIES (the file), INGEST_THREADS (wrk's -t).

local threads = {}

-- Number each thread before it starts.
function setup(thread)
	thread:set("tid", #threads)
	table.insert(threads, thread)
end

-- Read this thread's share of the bodies.
function init(args)
	local n = tonumber(os.getenv("INGEST_THREADS"))
	local i = 0
	sigs, bodies, idx, wraps = {}, {}, 0, 0
	for line in io.lines(os.getenv("INGEST_BODIES")) do
		if i % n == tid then
			local sig, body = line:match("^(%S+) (.*)$")
			sigs[#sigs + 1] = sig
			bodies[#bodies + 1] = body
		end
		i = i + 1
	end
end

-- The next body of this thread, signed.
function request()
	idx = idx + 1
	if idx > #bodies then
		idx = 1
		wraps = wraps + 1
	end
	return wrk.format("POST", nil, { ["Content-Type"] = "application/json",
		["X-Hub-Signature-256"] = sigs[idx] }, bodies[idx])
end

-- One line bench/ingest parses: counts, errors and latency in microseconds.
function done(summary, latency, requests)
	local wrapped = 0
	for _, t in ipairs(threads) do
		wrapped = wrapped + (t:get("wraps") or 0)
	end
	local e = summary.errors
	io.write(string.format("ingest-wrk: requests=%d duration_us=%d status_errors=%d socket_errors=%d "
		.. "p50_us=%d p90_us=%d p99_us=%d max_us=%d wraps=%d\n", summary.requests, summary.duration,
		e.status, e.connect + e.read + e.write + e.timeout, latency:percentile(50),
		latency:percentile(90), latency:percentile(99), latency.max, wrapped))
end
