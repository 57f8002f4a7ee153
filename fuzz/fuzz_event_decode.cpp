// fuzz_event_decode: arbitrary bytes as a journal record.
//
// Every reader of the journal trusts blackbox::VerifyEvent: a record it
// accepts is dereferenced freely by the fold, the tool's converters and the
// snapshot code. This target hands it arbitrary bytes and, whenever it accepts
// them, exercises everything a reader may do with the event:
//   - every field, through the generated object API (UnPack reads each one),
//     and packing the copy again gives an event that verifies and reads the same;
//   - the JSON conversion of `blackbox export`, including its round trip;
//   - Fold into a SystemState, as the app's stream and as the watchdog's, then
//     system_state.json and a snapshot encode/decode round trip.
// The same bytes are also offered to DecodeSnapshot, which reads the snapshot
// column family (equally exposed to damage).
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "blackbox/event.h"
#include "blackbox/state.h"
#include "fuzz_check.h"
#include "json_round_trip.h"

namespace blackbox::fuzz {
namespace {

// Snapshot bytes must decode back to a state that encodes to the same bytes
// (compared as bytes, so that NaN gauges compare equal to themselves).
void CheckSnapshotRoundTrip(const SystemState& state) {
  std::string encoded = EncodeSnapshot(state);
  Result<SystemState> decoded = DecodeSnapshot(Bytes(encoded));
  FUZZ_CHECK_MSG(decoded.ok(), decoded.status().ToString());
  FUZZ_CHECK(EncodeSnapshot(decoded.value()) == encoded);
}

void CheckState(const SystemState& state) {
  std::string json = SystemStateJson(state, -1);
  FUZZ_CHECK(!json.empty());
  volatile double sink = state.uptime_seconds() + state.gauge("active_connections");
  (void)sink;
  CheckSnapshotRoundTrip(state);
}

void Exercise(const fb::Event& event, std::span<const uint8_t> bytes) {
  // 1. Every field, and a re-packed copy reads the same.
  fb::EventT copy;
  event.UnPackTo(&copy);
  flatbuffers::FlatBufferBuilder fbb(bytes.size() + 64);
  fbb.Finish(fb::Event::Pack(fbb, &copy), fb::EventIdentifier());
  std::string why;
  const fb::Event* repacked = VerifyEvent(Bytes(fbb), &why);
  FUZZ_CHECK_MSG(repacked != nullptr, why);
  fb::EventT copy_again;
  repacked->UnPackTo(&copy_again);
  FUZZ_CHECK(copy_again.time_ns == copy.time_ns && copy_again.mono_ns == copy.mono_ns &&
             copy_again.pid == copy.pid && copy_again.stream == copy.stream &&
             copy_again.severity == copy.severity && copy_again.payload.type == copy.payload.type);

  // 2. JSON, as export and replay --json write it: valid for the event as
  // stored, and a stable round trip for its re-packed form (packing drops
  // values FlatBuffers never stores, such as -0.0 where the default is 0, so
  // the stored event's line may differ from it in exactly those fields).
  std::string line = tools::EventToJsonLine(event, kAppStream, 1);
  FUZZ_CHECK_MSG(!tools::Json::parse(line, nullptr, false).is_discarded(), line);
  CheckJsonRoundTrip(*repacked, kAppStream, 1);

  // 3. The fold, as an application event and as a watchdog event.
  SystemState app;
  Fold(app, event, kAppStream, 7);
  FUZZ_CHECK(app.event_count == 1 && app.covered.at(std::string(kAppStream)) == 7);
  CheckState(app);
  SystemState watchdog;
  Fold(watchdog, event, kWatchdogStream, 1);
  Fold(watchdog, event, kWatchdogStream, 2);
  FUZZ_CHECK(watchdog.event_count == 2);
  CheckState(watchdog);
}

}  // namespace
}  // namespace blackbox::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace blackbox;
  std::span<const uint8_t> bytes(data, size);

  std::string why;
  const fb::Event* event = VerifyEvent(bytes, &why);
  if (event == nullptr) {
    FUZZ_CHECK(!why.empty());  // every rejection names its reason
  } else {
    fuzz::Exercise(*event, bytes);
  }

  // The snapshot decoder faces the same damaged bytes; whatever it accepts
  // must be a state the rest of the code can use.
  Result<SystemState> snapshot = DecodeSnapshot(bytes);
  if (snapshot.ok()) fuzz::CheckState(snapshot.value());
  return 0;
}
