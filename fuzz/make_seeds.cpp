// Writes the seed corpus of the fuzz targets:
//   <dir>/fuzz_event_decode/<type>.bin   one encoded event of every payload type
//   <dir>/fuzz_import/<type>.jsonl       the same events as `export --history` lines,
//                                        plus hand-written variants of the format
//   <dir>/fuzz_journal/*.bin             flags byte + records (see fuzz_journal.cpp)
// Deterministic: fixed times and pids, so regenerating changes nothing unless
// the schema or the JSON shape did.
//   fuzz_make_seeds fuzz/corpus
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "blackbox/event.h"
#include "blackbox/state.h"
#include "event_json.h"
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
  for (const auto& d : {decode, import, journal}) fs::create_directories(d);

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
