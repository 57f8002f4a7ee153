#include "blackbox/status.h"

#include <fmt/format.h>

namespace blackbox {

std::string Status::ToString() const {
  std::string_view name;
  switch (code_) {
    case Code::kOk:
      return "OK";
    case Code::kNotFound:
      name = "not found";
      break;
    case Code::kInvalidArgument:
      name = "invalid argument";
      break;
    case Code::kIOError:
      name = "I/O error";
      break;
    case Code::kCorruption:
      name = "corruption";
      break;
    case Code::kBusy:
      name = "busy";
      break;
    case Code::kNoSpace:
      name = "no space left";
      break;
  }
  return fmt::format("{}: {}", name, message_);
}

}  // namespace blackbox
