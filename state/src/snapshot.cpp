// SystemState <-> StateSnapshot (schemas/events.fbs).
//
// Every field of SystemState round-trips, so that "snapshot + tail" folds to
// exactly the state a full fold gives. The fields are listed once, in
// snapshot_fields.h; what is here is the part that is more than a copy.
#include <memory>

#include "blackbox/state.h"
#include "snapshot_fields.h"

namespace blackbox {

using namespace snapshot_fields;

std::string EncodeSnapshot(const SystemState& s) {
  fb::StateSnapshotT t;
  ToTable<StateSnapshotFields>(s, t);
  for (const auto& [stream, seq] : s.covered) {
    auto p = std::make_unique<fb::StreamPositionT>();
    p->stream = stream;
    p->seq = seq;
    t.covered.push_back(std::move(p));
  }
  for (const auto& [name, value] : s.gauges) {
    auto g = std::make_unique<fb::GaugeValueT>();
    g->name = name;
    g->value = value;
    t.gauges.push_back(std::move(g));
  }
  for (const auto& [resource, f] : s.forecasts) {
    auto e = std::make_unique<fb::ForecastSummaryT>();
    e->resource = resource;
    e->seconds_to_limit = f.seconds_to_limit;
    e->message = f.message;
    t.forecasts.push_back(std::move(e));
  }
  if (s.last_error) {
    t.last_error = std::make_unique<fb::ErrorSummaryT>();
    ToTable<ErrorSummaryFields>(*s.last_error, *t.last_error);
  }
  if (s.last_crash) {
    t.last_crash = std::make_unique<fb::CrashSummaryT>();
    ToTable<CrashSummaryFields>(*s.last_crash, *t.last_crash);
  }
  t.watchdog = std::make_unique<fb::WatchdogSummaryT>();
  ToTable<WatchdogSummaryFields>(s.watchdog, *t.watchdog);

  flatbuffers::FlatBufferBuilder fbb(512);
  fbb.Finish(fb::StateSnapshot::Pack(fbb, &t));
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
}

Result<SystemState> DecodeSnapshot(std::span<const uint8_t> bytes) {
  flatbuffers::Verifier verifier(bytes.data(), bytes.size());
  if (bytes.size() < sizeof(flatbuffers::uoffset_t) ||
      !verifier.VerifyBuffer<fb::StateSnapshot>(nullptr)) {
    return Status::Corruption("snapshot fails the FlatBuffers verifier");
  }
  // The object API's copy: a snapshot is decoded once per reader, at open.
  const std::unique_ptr<fb::StateSnapshotT> t(
      flatbuffers::GetRoot<fb::StateSnapshot>(bytes.data())->UnPack());

  SystemState s;
  FromTable<StateSnapshotFields>(*t, s);
  for (const auto& p : t->covered) {
    if (p) s.covered[p->stream] = p->seq;
  }
  for (const auto& g : t->gauges) {
    if (g) s.gauges[g->name] = g->value;
  }
  for (const auto& f : t->forecasts) {
    if (f) s.forecasts[f->resource] = {f->seconds_to_limit, f->message};
  }
  if (t->last_error) FromTable<ErrorSummaryFields>(*t->last_error, s.last_error.emplace());
  if (t->last_crash) FromTable<CrashSummaryFields>(*t->last_crash, s.last_crash.emplace());
  if (t->watchdog) FromTable<WatchdogSummaryFields>(*t->watchdog, s.watchdog);
  return s;
}

}  // namespace blackbox
