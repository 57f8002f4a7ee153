// What the journal benchmarks share: their command line
// (NAME [--dir DIR] [--repeat R] [--scale X]), their scratch directory, the
// 8-byte big-endian keys raw RocksDB is given, and the median.
#pragma once

#include <fmt/format.h>
#include <stdlib.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

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
