// The numbered payloads of the ring tests: (thread, index) and a fill that
// depends on both, so that a payload read back proves it is the one written.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace blackbox::testing {

inline constexpr size_t kRingPayloadBytes = 100;

struct RingPayloadId {
  uint32_t thread = 0;
  uint64_t index = 0;
};

inline std::string RingPayload(uint32_t thread, uint64_t index) {
  std::string p(kRingPayloadBytes, '\0');
  std::memcpy(p.data(), &thread, 4);
  std::memcpy(p.data() + 4, &index, 8);
  for (size_t i = 12; i < p.size(); ++i) p[i] = static_cast<char>((thread * 31 + index + i) & 0xff);
  return p;
}

// The id a payload carries, or nullopt when its fill does not match it.
inline std::optional<RingPayloadId> ParseRingPayload(std::string_view p) {
  if (p.size() != kRingPayloadBytes) return std::nullopt;
  RingPayloadId id;
  std::memcpy(&id.thread, p.data(), 4);
  std::memcpy(&id.index, p.data() + 4, 8);
  if (RingPayload(id.thread, id.index) != p) return std::nullopt;
  return id;
}

}  // namespace blackbox::testing
