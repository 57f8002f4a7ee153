// Writes the seed corpus of the fuzz targets:
//   <dir>/fuzz_event_decode/<type>.bin   one encoded event of every payload type
//   <dir>/fuzz_import/<type>.jsonl       the same events as `export --history` lines,
//                                        plus hand-written variants of the format
//   <dir>/fuzz_journal/*.bin             flags byte + records (see fuzz_journal.cpp)
//   <dir>/fuzz_ring/*.bin                flags byte + ring files a writer left
//                                        (see fuzz_ring.cpp), made by the ring itself
// Deterministic: fixed times and pids, so regenerating changes nothing unless
// the schema or the JSON shape did.
//   fuzz_make_seeds fuzz/corpus
#include <stdlib.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "blackbox/event.h"
#include "blackbox/state.h"
#include "event_json.h"
#include "lanes.h"
#include "ring.h"
#include "sample_events.h"

namespace blackbox::fuzz {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kTime = 1768473000123456789;  // 2026-01-15T10:30:00.123456789Z
constexpr int64_t kMono = 81234567;
constexpr int32_t kPid = 4242;

// The envelope of the regression seeds.
fb::EventT Envelope(std::string stream, fb::Severity severity) {
  fb::EventT e;
  e.time_ns = kTime;
  e.mono_ns = kMono;
  e.pid = kPid;
  e.stream = std::move(stream);
  e.severity = severity;
  return e;
}

std::string Pack(const fb::EventT& e) {
  flatbuffers::FlatBufferBuilder fbb(256);
  tools::PackEvent(e, fbb);
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
}

void Write(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  if (!out) {
    std::cerr << "fuzz_make_seeds: cannot write " << path << "\n";
    std::exit(1);
  }
}

// Lines in the documented shape, written by hand: defaults left out, enum
// names in other cases and as numbers, an offset time, unknown keys, nulls,
// blank lines. The last two lines are refused by import.
constexpr const char* kHandWritten =
    R"({"seq": 1, "stream": "app", "time": "2026-01-15T10:30:00Z", "type": "lifecycle", "phase": "starting"}
{"seq": 2, "stream": "app", "time": "2026-01-15T11:30:00.5+01:00", "type": "error", "severity": "ERROR", "message": "boom", "frames": null, "added_later": [1, 2]}

{"seq": 3, "stream": "app", "time": "2026-01-15 10:30:01", "type": "gauge", "name": "active_connections", "value": 12}
{"seq": 4, "stream": "app", "time": "2026-01-15T10:30:02Z", "type": "health", "severity": 1, "cpu_percent": null, "rss_bytes": 18446744073709551615}
{"seq": 1, "stream": "watchdog", "time": "2026-01-15T10:30:03Z", "type": "restart", "reason": 6, "exit_code": 1}
{"seq": 2, "stream": "watchdog", "time": "2026-01-15T10:30:04Z", "type": "limit", "kind": "Cpu", "action": "abort"}
{"seq": 5, "stream": "app", "time": "2026-01-15T10:30:05Z", "type": "config", "component": "recovery", "entries": {"max_restarts": "7"}}
{"seq": 6, "stream": "app", "time": "2026-01-15T10:30:06Z", "type": "teleport"}
{"seq": 7, "stream": "app", "time": "yesterday", "type": "gauge"}
)";

// --- fuzz_ring ---------------------------------------------------------------

constexpr std::string_view kRingSeparator = "<<BBRING>>";

std::string GaugeEvent(double value) {
  fb::EventT e = Envelope("app", fb::Severity::Info);
  fb::GaugeT g;
  g.name = "g";
  g.value = value;
  e.payload.Set(std::move(g));
  return Pack(e);
}

std::unique_ptr<internal::Ring> OpenRing(const fs::path& dir, const std::string& name,
                                         uint64_t next_seq) {
  internal::RingOptions o;
  o.name = name;
  o.size = 8 * 256;  // 8 slots
  o.slot_size = 256;
  auto ring = internal::Ring::Open(dir.string(), o, next_seq);
  if (!ring.ok()) {
    std::cerr << "fuzz_make_seeds: " << ring.status().ToString() << "\n";
    std::exit(1);
  }
  return std::move(ring.value());
}

void AppendEvents(internal::Ring& ring, int n, double first) {
  for (int i = 0; i < n; ++i) {
    const std::string e = GaugeEvent(first + i);
    if (ring.Append(Bytes(e)).code != internal::RingCode::kOk) std::exit(1);
  }
}

void Drain(internal::Ring& ring, uint64_t through) {
  std::vector<internal::RingView> views;
  ring.Peek(ring.slot_count(), &views);
  ring.Release(through);
}

// A ring file as fuzz_ring takes it: the first 256 bytes of its header page,
// then its slots.
std::string RingInput(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return bytes.substr(0, 256) + bytes.substr(4096);
}

std::string RingSeed(uint8_t flags, const std::vector<std::string>& files) {
  std::string out(1, static_cast<char>(flags));
  for (size_t k = 0; k < files.size(); ++k) {
    if (k > 0) out += kRingSeparator;
    out += files[k];
  }
  return out;
}

void WriteRingSeeds(const fs::path& out) {
  std::string tmp_pattern = (fs::temp_directory_path() / "blackbox-seeds-XXXXXX").string();
  if (mkdtemp(tmp_pattern.data()) == nullptr) std::exit(1);
  const fs::path tmp = tmp_pattern;
  int n = 0;
  auto fresh = [&] {
    const fs::path d = tmp / std::to_string(n++);
    fs::create_directories(d);
    return d;
  };
  {  // four events after the database's three
    const fs::path d = fresh();
    auto ring = OpenRing(d, "RING", 4);
    AppendEvents(*ring, 4, 3);
    ring.reset();
    std::string ring_file = RingInput(d / "RING");
    Write(out / "left.bin", RingSeed(1, {ring_file}));
    // The same with a byte of seq 5's payload flipped: torn.
    ring_file[256 + 5 % 8 * 256 + 40] ^= 0x5a;
    Write(out / "torn.bin", RingSeed(1, {ring_file}));
  }
  {  // no database; three events from seq 1
    const fs::path d = fresh();
    auto ring = OpenRing(d, "RING", 1);
    AppendEvents(*ring, 3, 0);
    ring.reset();
    Write(out / "no_database.bin", RingSeed(2, {RingInput(d / "RING")}));
  }
  {  // two of six drained (still in their slots), the next writer with a ring
    const fs::path d = fresh();
    auto ring = OpenRing(d, "RING", 4);
    AppendEvents(*ring, 6, 3);
    Drain(*ring, 5);
    ring.reset();
    Write(out / "drained.bin", RingSeed(3, {RingInput(d / "RING")}));
  }
  {  // past the end of the slots: the seqs wrap around
    const fs::path d = fresh();
    auto ring = OpenRing(d, "RING", 4);
    AppendEvents(*ring, 6, 3);
    Drain(*ring, 9);
    AppendEvents(*ring, 5, 9);
    ring.reset();
    Write(out / "wrapped.bin", RingSeed(1, {RingInput(d / "RING")}));
  }
  {  // lanes: RING refers to three lane records; one in each lane was never moved
    const fs::path d = fresh();
    auto ring = OpenRing(d, "RING", 4);
    auto lane0 = OpenRing(d, "RING.lane-0", 1);
    auto lane1 = OpenRing(d, "RING.lane-1", 1);
    AppendEvents(*ring, 1, 3);
    const std::pair<internal::Ring*, uint64_t> stamped[] = {{lane0.get(), 100},
                                                            {lane1.get(), 150},
                                                            {lane0.get(), 200},
                                                            {lane0.get(), 300},
                                                            {lane1.get(), 350}};
    double value = 10;
    for (const auto& [lane, stamp] : stamped) {
      const std::string e = GaugeEvent(value++);
      if (lane->AppendPrefixed(stamp, Bytes(e)).code != internal::RingCode::kOk) std::exit(1);
    }
    const internal::LaneRef refs[] = {{0, 0, 1}, {1, 0, 1}, {0, 0, 2}};
    for (const internal::LaneRef& ref : refs) {
      std::string payload(sizeof ref, '\0');
      std::memcpy(payload.data(), &ref, sizeof ref);
      if (ring->Append(Bytes(payload), internal::kLaneFlag).code != internal::RingCode::kOk) {
        std::exit(1);
      }
    }
    ring.reset();
    lane0.reset();
    lane1.reset();
    const std::string r = RingInput(d / "RING"), l0 = RingInput(d / "RING.lane-0"),
                      l1 = RingInput(d / "RING.lane-1");
    Write(out / "lanes.bin", RingSeed(7, {r, l0, l1}));
    // RING lost: the lanes alone.
    Write(out / "lanes_without_ring.bin", RingSeed(7, {"", l0, l1}));
  }
  std::error_code ec;
  fs::remove_all(tmp, ec);
}

constexpr std::string_view kSeparator = "<<BBREC>>";

int Main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz_make_seeds CORPUS_DIR\n";
    return 2;
  }
  const fs::path dir = argv[1];
  const fs::path decode = dir / "fuzz_event_decode";
  const fs::path import = dir / "fuzz_import";
  const fs::path journal = dir / "fuzz_journal";
  const fs::path ring = dir / "fuzz_ring";
  for (const auto& d : {decode, import, journal, ring}) fs::create_directories(d);
  WriteRingSeeds(ring);

  // The tests' sample of every type, every field set (tests/support).
  std::vector<fb::EventT> events = testing::SampleEvents();
  std::vector<std::string> packed;
  std::string all_lines;
  tools::Json array = tools::Json::array();
  std::map<std::string, uint64_t> seqs;
  for (const fb::EventT& e : events) {
    packed.push_back(Pack(e));
    const fb::Event* event = VerifyEvent(Bytes(packed.back()));
    if (event == nullptr) {
      std::cerr << "fuzz_make_seeds: a sample event does not verify\n";
      return 1;
    }
    std::string name(PayloadName(event->payload_type()));
    Write(decode / (name + ".bin"), packed.back());
    uint64_t seq = ++seqs[e.stream];
    std::string line = tools::EventToJsonLine(*event, e.stream, seq);
    Write(import / (name + ".jsonl"), line + "\n");
    all_lines += line + "\n";
    array.push_back(tools::EventToJson(*event, e.stream, seq));
  }
  Write(import / "all_types.jsonl", all_lines);
  Write(import / "all_types_array.json", array.dump(2) + "\n");
  Write(import / "hand_written.jsonl", kHandWritten);

  // Regression seeds: inputs that once broke a promise (see fuzz/README.md).
  {
    fb::EventT e = Envelope("watchdog", fb::Severity::Error);
    fb::LogLineT p;
    p.source = "stdout";
    p.pattern = "ERROR";
    p.text = "ERROR \xf2\x80 binary output from the child";  // not UTF-8
    e.payload.Set(std::move(p));
    Write(decode / "regress_invalid_utf8.bin", Pack(e));
  }
  {
    fb::EventT e = Envelope("app", fb::Severity::Info);
    fb::ConfigT p;
    p.component = "recovery";
    for (auto [k, v] : {std::pair{"max_restarts", "5"}, std::pair{"max_restarts", "9"}}) {
      auto entry = std::make_unique<fb::ConfigEntryT>();
      entry->key = k;  // the same key twice: a JSON object cannot hold both
      entry->value = v;
      p.entries.push_back(std::move(entry));
    }
    e.payload.Set(std::move(p));
    Write(decode / "regress_config_duplicate_key.bin", Pack(e));
  }
  {
    fb::EventT e = Envelope("app", fb::Severity::Info);
    fb::ConfigT p;
    p.component = "recovery";
    for (auto [k, v] : {std::pair{"max_restar\xf4s", "5"}, std::pair{"max_restar\x8cs", "9"}}) {
      auto entry = std::make_unique<fb::ConfigEntryT>();
      entry->key = k;  // two keys, both written as "max_restar\ufffds"
      entry->value = v;
      p.entries.push_back(std::move(entry));
    }
    e.payload.Set(std::move(p));
    Write(decode / "regress_config_invalid_utf8_key.bin", Pack(e));
  }
  Write(import / "regress_time_out_of_range.jsonl",
        R"({"seq": 1, "stream": "app", "time": "4052-01-15T11:30:00Z", "type": "gauge"})"
        "\n"
        R"({"seq": 2, "stream": "app", "time": "1000-01-01T00:00:00Z", "type": "gauge"})"
        "\n"
        R"({"seq": 3, "stream": "app", "time": "1677-09-21T00:12:43.145224192Z", "type": "gauge"})"
        "\n"
        R"({"seq": 4, "stream": "app", "time": "2262-04-11T23:47:16.854775807Z", "type": "gauge"})"
        "\n");

  // Journal inputs: app events only (an event naming another stream is a
  // Verify finding), then every type, a damaged record, and snapshot flags.
  std::string app_records, all_records;
  for (size_t i = 0; i < events.size(); ++i) {
    std::string sep = all_records.empty() ? "" : std::string(kSeparator);
    all_records += sep + packed[i];
    if (events[i].stream == "app") {
      app_records += (app_records.empty() ? "" : std::string(kSeparator)) + packed[i];
    }
  }
  std::string damaged = packed[0].substr(0, packed[0].size() / 2) + std::string(kSeparator) +
                        packed[2] + std::string(kSeparator) + "not an event";
  Write(journal / "app_buffered.bin", std::string(1, '\x00') + app_records);
  Write(journal / "all_durable.bin", std::string(1, '\x01') + all_records);
  Write(journal / "damaged.bin", std::string(1, '\x00') + damaged);
  Write(journal / "snapshot.bin", std::string(1, '\x02') + app_records);
  Write(journal / "damaged_snapshot.bin", std::string(1, '\x06') + all_records);
  Write(journal / "compacted.bin", std::string(1, '\x0a') + app_records);
  return 0;
}

}  // namespace
}  // namespace blackbox::fuzz

int main(int argc, char** argv) { return blackbox::fuzz::Main(argc, argv); }
