// Helpers shared by the journal tests.
#pragma once

#include <string>

#include "blackbox/event.h"
#include "temp_dir.h"

namespace blackbox::testing {

// TempDir: tests/support/temp_dir.h.

// A small gauge event with the given name/value and explicit times.
fb::EventT GaugeEvent(std::string_view name, double value, int64_t time_ns = 0);

}  // namespace blackbox::testing
