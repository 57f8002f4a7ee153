#include "test_util.h"

#include <stdlib.h>

#include <filesystem>
#include <stdexcept>

namespace blackbox::testing {

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "blackbox-test-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

fb::EventT GaugeEvent(std::string_view name, double value, int64_t time_ns) {
  fb::EventT e;
  e.time_ns = time_ns;
  e.severity = fb::Severity::Info;
  fb::GaugeT g;
  g.name = std::string(name);
  g.value = value;
  e.payload.Set(std::move(g));
  return e;
}

}  // namespace blackbox::testing
