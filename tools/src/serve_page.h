// The page `blackbox serve` answers at "/": tools/web/index.html, embedded in
// the binary at build time (tools/CMakeLists.txt), so it works offline.
#pragma once

#include <string_view>

namespace blackbox::tools {

std::string_view ServePage();

}  // namespace blackbox::tools
