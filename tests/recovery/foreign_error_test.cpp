// Errors and crashes described by the application itself (another runtime's
// exceptions: the Python module), and the Python stack a chained
// faulthandler writes into the crash spill.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "blackbox/journal.h"
#include "blackbox/recovery.h"
#include "crash_capture.h"
#include "temp_dir.h"

namespace blackbox {
namespace {

namespace fs = std::filesystem;

class ForeignError : public ::testing::Test {
 protected:
  RecoveryOptions Options() {
    RecoveryOptions o;
    o.journal_dir = (dir_ / "journal").string();
    o.state_file = "";
    o.handle_signals = false;
    o.capture_crashes = false;
    return o;
  }
  // Every event of the app stream of this payload type, as copies.
  template <class T>
  std::vector<std::unique_ptr<T>> Events(fb::Payload type) {
    std::vector<std::unique_ptr<T>> out;
    auto reader = Reader::Open((dir_ / "journal").string(), "app");
    EXPECT_TRUE(reader.ok());
    EXPECT_TRUE(
        reader.value()
            ->Scan({},
                   [&](const Record& r) {
                     if (r.event->payload_type() == type) {
                       out.emplace_back(
                           static_cast<const typename T::TableType*>(r.event->payload())->UnPack());
                     }
                     return true;
                   })
            .ok());
    return out;
  }
  blackbox::testing::TempDir tmp_;
  const fs::path dir_{tmp_.path()};
};

TEST_F(ForeignError, ReportErrorJournalsTypeMessageFramesThenRecovers) {
  int recovered = 0;
  {
    RecoveryManager rm(Options());
    rm.register_recovery_callback("reconnect", [&] { ++recovered; });
    rm.report_error("order_execution", {"ValueError",
                                        "price out of range",
                                        {"orders.py:42 in place_order", "main.py:7 in <module>"}});
    EXPECT_EQ(rm.state().last_error->exception_type, "ValueError");
  }
  EXPECT_EQ(recovered, 1);
  auto errors = Events<fb::ErrorT>(fb::Payload::Error);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0]->context, "order_execution");
  EXPECT_EQ(errors[0]->exception_type, "ValueError");
  EXPECT_EQ(errors[0]->message, "price out of range");
  EXPECT_EQ(errors[0]->frames,
            (std::vector<std::string>{"orders.py:42 in place_order", "main.py:7 in <module>"}));
}

TEST_F(ForeignError, FatalErrorIsACrashAndTheNextStartCountsAnUncleanRestart) {
  {
    RecoveryManager rm(Options());
    rm.report_fatal_error({"LookupError", "unroutable order 5", {"router.py:108 in main"}});
  }  // destroyed without graceful_shutdown: no clean stop after a fatal error
  auto crashes = Events<fb::CrashT>(fb::Payload::Crash);
  ASSERT_EQ(crashes.size(), 1u);
  EXPECT_EQ(crashes[0]->origin, fb::CrashOrigin::Terminate);
  EXPECT_EQ(crashes[0]->exception_type, "LookupError");
  EXPECT_EQ(crashes[0]->exception_message, "unroutable order 5");
  EXPECT_EQ(crashes[0]->frames, (std::vector<std::string>{"router.py:108 in main"}));
  EXPECT_EQ(crashes[0]->crashed_pid, getpid());
  RecoveryManager next(Options());
  SystemState s = next.state();
  EXPECT_EQ(s.restart_count, 1);
  EXPECT_EQ(s.crash_count, 1u);
  ASSERT_TRUE(s.last_crash.has_value());
  EXPECT_EQ(s.last_crash->exception_type, "LookupError");
}

TEST(CrashSpill, FaulthandlerLinesBeforeARecordBecomeItsLastFrames) {
  const blackbox::testing::TempDir dir;
  const std::string path = dir / "python.crash";
  {
    std::ofstream out(path);
    out << "Fatal Python error: Segmentation fault\n\n"
           "Current thread 0x00007f0000000000 (most recent call first):\n"
           "  File \"/srv/app/feed.py\", line 6 in read_price\n"
           "  File \"/srv/app/main.py\", line 8 in <module>\n\n"
           "BLACKBOX-CRASH 1\norigin signal\nsignal 11\nfault_address 0x0\npid 42\n"
           "time_ns 1\nframes 1\n/lib/libc.so.6(+0x1234) [0x1234]\nend\n";
  }
  std::vector<fb::CrashT> records = ReadSpill(path, /*name_frames=*/false);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].frames,
            (std::vector<std::string>{"libc.so.6+0x1234", "/srv/app/feed.py:6 in read_price",
                                      "/srv/app/main.py:8 in <module>"}));
}

}  // namespace
}  // namespace blackbox
