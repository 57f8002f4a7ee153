#include "test_util.h"

namespace blackbox::testing {

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
