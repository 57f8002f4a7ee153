#include "incident_list.h"

#include "human_format.h"
#include "time_spec.h"

namespace blackbox::tools {

Status ListIncidents(const MergedReader& reader, const BadRecordFn& on_bad, Incidents* out) {
  IncidentBuilder builder;
  MergedReader::Options scan;
  scan.on_bad = on_bad;
  Status s = reader.Scan(scan, [&](const Record& r) {
    builder.Add(r.stream, r.seq, *r.event);
    if (r.event->payload_type() == fb::Payload::Crash) {
      out->crash_bytes.emplace(std::pair{std::string(r.stream), r.seq}, std::string(r.bytes));
    }
    return true;
  });
  out->list = builder.Finish();
  return s;
}

Json IncidentToJson(const Incidents& all, const Incident& i) {
  Json j = Json::object();
  j["number"] = i.number;
  j["time"] = FormatUtc(i.time_ns);
  j["time_ns"] = i.time_ns;
  j["pid"] = i.pid;
  j["reason"] = i.reason;
  const fb::Event* e = all.Primary(i);
  j["crash"] = e ? EventToJson(*e, i.primary_stream, i.primary_seq) : Json(nullptr);
  // As the main record says (what `crashes --json` printed per record before).
  j["origin"] = e ? j["crash"]["origin"] : Json(nullptr);
  j["fault_address"] = i.fault_address;
  j["signal"] = i.signal;
  j["signal_name"] = i.signal != 0 ? Json(SignalName(i.signal)) : Json(nullptr);
  j["exit_code"] = i.exit_code;
  j["core_dumped"] = i.core_dumped;
  j["exception_type"] = i.exception_type.empty() ? Json(nullptr) : Json(i.exception_type);
  j["exception_message"] = i.exception_type.empty() ? Json(nullptr) : Json(i.exception_message);
  j["frames"] = i.frames;
  j["signature"] = i.signature.empty() ? Json(nullptr) : Json(i.signature);
  j["first_seen"] = i.first_seen;
  j["build_id"] = i.build_id.empty() ? Json(nullptr) : Json(i.build_id);
  j["lived_seconds"] = i.lived_ns ? Json(static_cast<double>(*i.lived_ns) / 1e9) : Json(nullptr);
  if (i.restart_time_ns) {
    j["restart"] = {{"time", FormatUtc(*i.restart_time_ns)},
                    {"attempt", i.restart_attempt},
                    {"delay_ms", i.restart_delay_ms},
                    {"pid", i.restart_pid}};
  } else {
    j["restart"] = nullptr;
  }
  Json sources = Json::array();
  for (const auto& s : i.sources) {
    sources.push_back({{"stream", s.stream}, {"seq", s.seq}, {"kind", s.kind}});
  }
  j["sources"] = std::move(sources);
  return j;
}

}  // namespace blackbox::tools
