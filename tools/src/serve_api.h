// The JSON answers of `blackbox serve` (tools/README.md, "blackbox serve"),
// apart from HTTP: each takes the journal root and the request's query
// parameters and returns the response body, so the tests and the server run
// the same code. The answers come from the journal's model (serve_model.h),
// which each call first brings up to date with what the writers appended, so
// an answer includes whatever was journaled up to that moment (the server
// follows the journal live without a thread of its own). What the model does
// not hold (a window of events, the state at a past moment) is read from the
// journal.
//
// Errors: a bad parameter throws ToolError with kExitUsage (HTTP 400), a
// journal that cannot be read throws it with kExitTrouble (HTTP 500).
// Damaged records are skipped and counted in the answer's "damaged" field.
#pragma once

#include <map>
#include <string>

#include "event_json.h"

namespace blackbox::tools {

// Query parameters by name; a repeated name keeps every value, in order.
using QueryParams = std::multimap<std::string, std::string>;

// /api/events: {"events": [replay --json objects…], "damaged": N,
// "truncated": bool}. since, until (replay's times), type and stream
// (repeatable or comma-separated), limit (the newest N matching, default
// 10000).
Json ServeEvents(const std::string& root, const QueryParams& q);

// /api/state?at=: SystemStateJson, as `blackbox state --json [--at]`.
Json ServeState(const std::string& root, const QueryParams& q);

// /api/crashes: {"crashes": [crash objects, each with "number" from 1], ...}.
Json ServeCrashes(const std::string& root);

// /api/crashes/N: {"crash": …, "number": N, "before": [events of the 10 s
// before], "state": the state folded at the crash}.
Json ServeCrash(const std::string& root, const std::string& number);

// /api/health?since=&until=&points=: per stream, health samples put in at
// most `points` (default 600, at most 10000) equal time buckets, each
// [t_start_ns, t_end_ns, samples, rss_min_mb, rss_max_mb, cpu_min, cpu_max],
// plus the watchdog's configured limits ("max_memory_mb", "max_cpu_percent",
// null when not journaled).
Json ServeHealth(const std::string& root, const QueryParams& q);

}  // namespace blackbox::tools
