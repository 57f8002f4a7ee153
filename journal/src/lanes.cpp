// The lanes of buffered events: see lanes.h.
#include "lanes.h"

#include <dirent.h>
#include <fmt/format.h>
#include <sched.h>
#include <time.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <string_view>
#include <tuple>
#include <unordered_map>

namespace blackbox::internal {

namespace {

constexpr uint64_t kLocked = 1;
// Rounds over every lane before an append gives up (all of them busy).
constexpr int kBusyRounds = 64;

std::atomic<uint32_t> next_thread_id{0};
thread_local const uint32_t thread_id = next_thread_id.fetch_add(1, std::memory_order_relaxed);
thread_local uint64_t thread_last_stamp = 0;

uint64_t ClockNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  // Never 0: StampOf's "none".
  return std::max<uint64_t>(
      static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec), 1);
}

// Nothing after it executes before the clock read before it (lanes.h).
inline void AfterClockRead() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_lfence();
#elif defined(__aarch64__)
  asm volatile("isb" ::: "memory");
#endif
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

}  // namespace

std::string LaneFile(size_t lane) { return fmt::format("{}{}", kLanePrefix, lane); }

std::vector<std::string> ListLaneFiles(const std::string& dir, std::vector<size_t>* lanes) {
  std::map<size_t, std::string> found;
  if (DIR* d = ::opendir(dir.c_str())) {
    const size_t prefix = std::strlen(kLanePrefix);
    while (const dirent* e = ::readdir(d)) {
      std::string_view name(e->d_name);
      if (name.size() <= prefix || name.substr(0, prefix) != kLanePrefix) continue;
      std::string_view digits = name.substr(prefix);
      if (digits.size() > 6 ||
          !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        continue;
      }
      found.emplace(std::stoul(std::string(digits)), dir + "/" + std::string(name));
    }
    ::closedir(d);
  }
  std::vector<std::string> files;
  if (lanes) lanes->clear();
  for (auto& [lane, file] : found) {
    if (lanes) lanes->push_back(lane);
    files.push_back(std::move(file));
  }
  return files;
}

LaneRef LaneRefOf(std::span<const uint8_t> payload) {
  LaneRef r;
  if (payload.size() == sizeof r) {
    std::memcpy(&r, payload.data(), sizeof r);
  } else {
    r.lane = UINT32_MAX;
  }
  return r;
}

RingRecord* FindLaneRecord(LaneScans& lanes, uint32_t lane, uint64_t position) {
  auto it = lanes.find(lane);
  if (it == lanes.end()) return nullptr;
  auto& recs = it->second.records;
  auto at = std::lower_bound(recs.begin(), recs.end(), position,
                             [](const RingRecord& r, uint64_t p) { return r.seq < p; });
  const bool found =
      at != recs.end() && at->seq == position && at->payload.size() >= sizeof(uint64_t);
  return found ? &*at : nullptr;
}

std::vector<LaneLeftover> LaneLeftovers(const std::vector<RingRecord>& ring, LaneScans& lanes,
                                        uint64_t* unstamped) {
  std::map<uint32_t, uint64_t> referred;
  for (const RingRecord& r : ring) {
    if ((r.flags & kLaneFlag) == 0) continue;
    const LaneRef ref =
        LaneRefOf({reinterpret_cast<const uint8_t*>(r.payload.data()), r.payload.size()});
    referred[ref.lane] = std::max(referred[ref.lane], ref.position);
  }
  std::vector<LaneLeftover> out;
  for (auto& [lane, scan] : lanes) {
    const auto it = referred.find(lane);
    const uint64_t after = it == referred.end() ? 0 : it->second;
    for (RingRecord& r : scan.records) {
      if (r.seq < scan.head || r.seq <= after) continue;
      if (r.payload.size() < sizeof(uint64_t)) {
        ++*unstamped;
        continue;
      }
      uint64_t stamp;
      std::memcpy(&stamp, r.payload.data(), sizeof stamp);
      out.push_back({stamp, lane, r.seq, &r});
    }
  }
  std::sort(out.begin(), out.end(), [](const LaneLeftover& x, const LaneLeftover& y) {
    return std::tie(x.stamp, x.lane, x.position) < std::tie(y.stamp, y.lane, y.position);
  });
  return out;
}

uint64_t StampOf(std::span<const uint8_t> payload) {
  uint64_t stamp = 0;
  if (payload.size() >= sizeof stamp) std::memcpy(&stamp, payload.data(), sizeof stamp);
  return stamp;
}

size_t DropWritten(std::vector<LaneLeftover>* leftovers, const std::vector<std::string>& written) {
  std::unordered_map<std::string_view, size_t> count;
  for (const std::string& v : written) ++count[v];
  const size_t before = leftovers->size();
  std::erase_if(*leftovers, [&](const LaneLeftover& l) {
    const auto it = count.find(std::string_view(l.record->payload).substr(sizeof(uint64_t)));
    if (it == count.end() || it->second == 0) return false;
    --it->second;
    return true;
  });
  return before - leftovers->size();
}

std::span<const uint8_t> WithoutStamp(std::span<const uint8_t> payload) {
  return payload.size() < sizeof(uint64_t) ? std::span<const uint8_t>{}
                                           : payload.subspan(sizeof(uint64_t));
}

uint64_t NextStamp() {
  const uint64_t stamp = std::max(ClockNs(), thread_last_stamp + 1);
  thread_last_stamp = stamp;
  return stamp;
}

Lanes::Lanes(std::vector<std::unique_ptr<Ring>> rings)
    : rings_(std::move(rings)), states_(new State[rings_.size()]) {}

Lanes::~Lanes() = default;

Result<std::unique_ptr<Lanes>> Lanes::Open(const std::string& dir, size_t count,
                                           const RingOptions& per_lane) {
  if (count == 0 || count > 1024) {
    return Status::InvalidArgument(fmt::format("{} ring lanes: 1 to 1024", count));
  }
  std::vector<std::unique_ptr<Ring>> rings;
  for (size_t i = 0; i < count; ++i) {
    RingOptions o = per_lane;
    o.name = LaneFile(i);
    auto r = Ring::Open(dir, o, 1);
    if (!r.ok()) return r.status();
    if ((*r)->payload_max() < sizeof(uint64_t)) {
      return Status::InvalidArgument("ring lane slots too small for a stamp");
    }
    rings.push_back(std::move(*r));
  }
  return std::unique_ptr<Lanes>(new Lanes(std::move(rings)));
}

LaneAppend Lanes::Append(std::span<const uint8_t> payload, uint32_t flags) {
  const size_t n = rings_.size();
  const size_t first = thread_id % n;
  for (int round = 0; round < kBusyRounds; ++round) {
    for (size_t k = 0; k < n; ++k) {
      const size_t i = first + k < n ? first + k : first + k - n;
      State& st = states_[i];
      uint64_t idle = 0;
      if (st.value.load(std::memory_order_relaxed) != 0 ||
          !st.value.compare_exchange_strong(idle, kLocked, std::memory_order_acquire)) {
        continue;
      }
      // Under the lock: the lane's stamps rise with its positions.
      uint64_t stamp = NextStamp();
      if (stamp <= st.last) stamp = thread_last_stamp = st.last + 1;
      const RingAppend a = rings_[i]->AppendPrefixed(stamp, payload, flags);
      if (a.code == RingCode::kOk) st.last = stamp;
      st.value.store(0, std::memory_order_release);
      return {a.code, static_cast<uint32_t>(i), a.seq};
    }
    sched_yield();
  }
  return {RingCode::kFull, 0, 0};
}

uint64_t Lanes::Horizon() const {
  const uint64_t h = ClockNs();
  AfterClockRead();
  return h;
}

bool Lanes::Empty() const {
  return std::all_of(rings_.begin(), rings_.end(),
                     [](const auto& r) { return r->head() == r->tail(); });
}

}  // namespace blackbox::internal
