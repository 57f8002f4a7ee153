// A program outside the blackbox tree, built against the installed package.
#include <blackbox/journal.h>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  auto journal = blackbox::Journal::Open(argv[1], "app");
  if (!journal.ok()) {
    std::fprintf(stderr, "%s\n", journal.status().ToString().c_str());
    return 1;
  }
  blackbox::fb::EventT event;
  blackbox::fb::GaugeT gauge;
  gauge.name = "active_positions";
  gauge.value = 1;
  event.payload.Set(gauge);
  auto seq = (*journal)->Append(std::move(event), blackbox::Durability::kDurable);
  if (!seq.ok()) return 1;
  int n = 0;
  (*journal)->Scan({}, [&](const blackbox::Record&) {
    ++n;
    return true;
  });
  std::printf("appended seq %llu, read back %d event\n", static_cast<unsigned long long>(*seq), n);
  return 0;
}
