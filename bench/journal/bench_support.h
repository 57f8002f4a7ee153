// What the journal benchmarks share: their command line
// (NAME [--dir DIR] [--repeat R] [--scale X]), their scratch directory, the
// event they append, raw RocksDB as they open it, its 8-byte big-endian keys,
// and the median.
#pragma once

#include <flatbuffers/flatbuffers.h>
#include <fmt/format.h>
#include <rocksdb/db.h>
#include <rocksdb/memtablerep.h>
#include <stdlib.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "blackbox/event.h"

namespace blackbox::bench {

struct BenchArgs {
  std::string base;  // the scratch directory (made under $TMPDIR when not given)
  int repeat = 5;
  double scale = 1.0;
};

// Parses argv; on a bad argument prints the usage line and exits 2.
inline BenchArgs ParseBenchArgs(int argc, char** argv, const char* name) {
  BenchArgs args;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--dir" && i + 1 < argc) {
      args.base = argv[++i];
    } else if (a == "--repeat" && i + 1 < argc) {
      args.repeat = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--scale" && i + 1 < argc) {
      args.scale = std::atof(argv[++i]);
    } else {
      fmt::print(stderr, "usage: {} [--dir DIR] [--repeat R] [--scale X]\n", name);
      std::exit(2);
    }
  }
  if (args.base.empty()) {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / (std::string(name) + "-XXXXXX")).string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      fmt::print(stderr, "{}: cannot create a scratch directory\n", name);
      std::exit(1);
    }
    args.base = tmpl;
  }
  return args;
}

// A health sample (the most frequent event a service writes), `i` in its RSS.
inline void BuildHealthEvent(flatbuffers::FlatBufferBuilder& fbb, uint64_t i = 0) {
  fbb.Clear();
  fb::HealthBuilder h(fbb);
  h.add_rss_bytes(100'000'000 + i);
  h.add_cpu_percent(12.5);
  h.add_memory_percent(40.0);
  h.add_disk_percent(55.0);
  h.add_threads(12);
  h.add_open_fds(40);
  h.add_sampled_pid(4242);
  auto off = h.Finish();
  FinishEvent(fbb, "app", fb::Severity::Info, fb::Payload::Health, off.Union());
}

// Raw RocksDB with its defaults, or with `vector` the journal's memtable (a
// vector, sorted at flush: journal/src/rocksdb_options.cpp), which suits
// keys that arrive in order. Exits 1 when it cannot be opened.
inline std::unique_ptr<rocksdb::DB> OpenRaw(const std::string& path, bool vector = false) {
  rocksdb::Options o;
  o.create_if_missing = true;
  if (vector) {
    o.memtable_factory = std::make_shared<rocksdb::VectorRepFactory>();
    o.allow_concurrent_memtable_write = false;
  }
  rocksdb::DB* raw = nullptr;
  if (rocksdb::Status s = rocksdb::DB::Open(o, path, &raw); !s.ok()) {
    fmt::print(stderr, "raw open: {}\n", s.ToString());
    std::exit(1);
  }
  return std::unique_ptr<rocksdb::DB>(raw);
}

inline std::string BigEndianKey(uint64_t seq) {
  std::string k(8, '\0');
  for (int i = 0; i < 8; ++i) k[i] = static_cast<char>(seq >> (56 - 8 * i));
  return k;
}

inline double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace blackbox::bench
