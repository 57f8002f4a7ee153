// A ring writer process for the kill -9 test of the ring.
//
//   ring_writer_child DIR ACK_FILE THREADS SLOTS_BYTES
//
// Opens DIR/RING (numbered from 1) and appends, from THREADS threads at full
// speed, the payloads of ring_payload.h; after each append returns, thread t
// stores the seq it got and its count of appends done in the u64 pair t of
// ACK_FILE (MAP_SHARED, made by the caller). A drain thread moves published
// records to DIR/DRAINED (u64 seq, u32 length, payload; one write(2) per
// batch) before releasing them, as the journal's drain writes to RocksDB.
// Runs until killed.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "ring.h"
#include "ring_payload.h"

int main(int argc, char** argv) {
  if (argc != 5) {
    fmt::print(stderr, "usage: {} DIR ACK_FILE THREADS SLOTS_BYTES\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  const int threads = std::atoi(argv[3]);
  blackbox::internal::RingOptions options;
  options.size = std::strtoul(argv[4], nullptr, 10);
  auto ring = blackbox::internal::Ring::Open(dir, options, 1);
  if (!ring.ok()) {
    fmt::print(stderr, "ring_writer_child: {}\n", ring.status().ToString());
    return 1;
  }
  int ack_fd = ::open(argv[2], O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  const size_t ack_bytes = 16 * static_cast<size_t>(threads);
  void* ack_map = ack_fd < 0
                      ? MAP_FAILED
                      : ::mmap(nullptr, ack_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, ack_fd, 0);
  if (ack_map == MAP_FAILED) {
    fmt::print(stderr, "ring_writer_child: cannot map {}\n", argv[2]);
    return 1;
  }
  auto* ack = static_cast<std::atomic<uint64_t>*>(ack_map);
  const std::string drained = dir + "/DRAINED";
  int out = ::open(drained.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (out < 0) {
    fmt::print(stderr, "ring_writer_child: cannot create {}\n", drained);
    return 1;
  }
  blackbox::internal::Ring& r = **ring;
  std::thread drain([&] {
    std::vector<blackbox::internal::RingView> views;
    std::string buf;
    for (;;) {
      if (r.Peek(1024, &views) == 0) {
        std::this_thread::yield();
        continue;
      }
      buf.clear();
      for (const auto& v : views) {
        uint32_t len = static_cast<uint32_t>(v.payload.size());
        buf.append(reinterpret_cast<const char*>(&v.seq), 8);
        buf.append(reinterpret_cast<const char*>(&len), 4);
        buf.append(reinterpret_cast<const char*>(v.payload.data()), len);
      }
      for (size_t done = 0; done < buf.size();) {
        ssize_t n = ::write(out, buf.data() + done, buf.size() - done);
        if (n <= 0) std::abort();
        done += static_cast<size_t>(n);
      }
      r.Release(views.back().seq);
    }
  });
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (uint64_t i = 0;; ++i) {
        const std::string p = blackbox::testing::RingPayload(static_cast<uint32_t>(t), i);
        blackbox::internal::RingAppend a;
        do {
          a = r.Append({reinterpret_cast<const uint8_t*>(p.data()), p.size()});
        } while (a.code == blackbox::internal::RingCode::kFull);
        if (a.code != blackbox::internal::RingCode::kOk) std::abort();
        ack[2 * t].store(a.seq, std::memory_order_release);
        ack[2 * t + 1].store(i + 1, std::memory_order_release);
      }
    });
  }
  for (auto& w : workers) w.join();
  drain.join();
}
