// Monitoring with real servers and programs: the watchdog's /metrics scraped
// by a real Prometheus (started here on a free loopback port), checked by
// promtool, and held up by clients that misbehave; --alert-exec running real
// scripts. Every address is 127.0.0.1.
#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "blackbox/event.h"
#include "blackbox/journal.h"
#include "process.h"
#include "temp_dir.h"

namespace {

namespace fb = blackbox::fb;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using blackbox::testing::ReadFile;

const std::string kWatchdog = BLACKBOX_WATCHDOG_BIN;
const std::string kTool = BLACKBOX_TOOL_BIN;
const std::string kChild = WATCHDOG_TEST_CHILD_BIN;
const std::string kDemo = BLACKBOX_DEMO_BIN;
// An app linking blackbox::recovery; `leak` grows 2 MB every 50 ms for 3 s
// against its own 400 MB forecast limit, sampling its health every 50 ms.
const std::string kCrashyChild = CRASHY_CHILD_BIN;
const std::string kPrometheus = "/usr/bin/prometheus";
const std::string kPromtool = "/usr/bin/promtool";

bool WaitFor(const std::function<bool()>& condition, double seconds) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

std::vector<std::string> Lines(const std::string& path) {
  std::vector<std::string> lines;
  std::istringstream in(ReadFile(path));
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// A port nothing listens on right now (the kernel's pick, released again).
int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

// A connected TCP socket to 127.0.0.1:port, or -1.
int Connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

class Process {
 public:
  Process(const std::vector<std::string>& args, const std::string& out, const std::string& err) {
    const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    pid_ = blackbox::testing::StartProcess(args, {}, STDIN_FILENO, o, e);
    ::close(o);
    ::close(e);
  }
  ~Process() { Kill(SIGKILL); }
  pid_t pid() const { return pid_; }
  void Kill(int sig) {
    if (status_) return;
    ::kill(pid_, sig);
    Wait(30);
  }
  std::optional<int> Wait(double seconds) {
    if (status_) return status_;
    int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    pollfd p{fd, POLLIN, 0};
    int ready = ::poll(&p, 1, static_cast<int>(seconds * 1000));
    ::close(fd);
    if (ready <= 0) return std::nullopt;
    int status = 0;
    ::waitpid(pid_, &status, 0);
    status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return status_;
  }

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

class MetricsTest : public ::testing::Test {
 protected:
  // The servers go before the scratch directory they write to.
  void TearDown() override {
    prometheus_.reset();
    watchdogs_.clear();
  }
  std::string file(std::string_view name) const { return dir_ + "/" + std::string(name); }
  std::string journal() const { return file("journal"); }

  // Starts a watchdog serving /metrics on a free port; returns its address.
  // `previous`: the address of a watchdog that ran on this journal before,
  // which --status shows until the new one has journaled its own.
  std::string StartWatchdog(std::vector<std::string> options,
                            const std::vector<std::string>& command, std::string_view tag = "wd",
                            const std::string& previous = "") {
    std::vector<std::string> args = {kWatchdog,     "--journal",        journal(),    "--state-dir",
                                     file("state"), "--metrics-listen", "127.0.0.1:0"};
    args.insert(args.end(), options.begin(), options.end());
    args.push_back("--");
    args.insert(args.end(), command.begin(), command.end());
    watchdogs_.push_back(std::make_unique<Process>(args, file(std::string(tag) + ".out"),
                                                   file(std::string(tag) + ".err")));
    std::string address;
    WaitFor(
        [&] {
          auto status =
              blackbox::testing::RunProcess({kWatchdog, "--status", "--json", "--state-dir",
                                             file("state"), "--journal", journal()});
          if (status.exit_code != 0) return false;
          auto json = nlohmann::json::parse(status.out, nullptr, false);
          if (json.is_discarded() || !json["metrics_address"].is_string()) return false;
          address = json["metrics_address"].get<std::string>();
          return address != previous;
        },
        10);
    return address;
  }

  static std::string Scrape(const std::string& address, std::string* content_type = nullptr) {
    httplib::Client client("http://" + address);
    client.set_read_timeout(5, 0);
    auto response = client.Get("/metrics");
    if (!response || response->status != 200) return "";
    if (content_type != nullptr) *content_type = response->get_header_value("Content-Type");
    return response->body;
  }

  // The value of the sample line starting with `series ` (e.g.
  // `blackbox_restarts_total{reason="crash"}`), or nullopt.
  static std::optional<double> Sample(const std::string& text, const std::string& series) {
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      if (line.starts_with(series + " ")) return std::stod(line.substr(series.size() + 1));
    }
    return std::nullopt;
  }

  int JournalRestarts() const {
    int n = 0;
    auto reader = blackbox::Reader::Open(journal(), blackbox::kWatchdogStream);
    if (!reader.ok()) return -1;
    reader.value()->Scan({}, [&](const blackbox::Record& r) {
      if (r.event->payload_type() == fb::Payload::Restart) ++n;
      return true;
    });
    return n;
  }

  // Starts Prometheus scraping `target` every second; returns its port.
  int StartPrometheus(const std::string& target) {
    const int port = FreePort();
    std::ofstream(file("prometheus.yml")) << fmt::format(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: blackbox\n"
        "    static_configs:\n"
        "      - targets: ['{}']\n",
        target);
    prometheus_ = std::make_unique<Process>(
        std::vector<std::string>{kPrometheus, "--config.file=" + file("prometheus.yml"),
                                 "--storage.tsdb.path=" + file("tsdb"),
                                 fmt::format("--web.listen-address=127.0.0.1:{}", port)},
        file("prometheus.out"), file("prometheus.err"));
    return port;
  }

  // Prometheus's answer to an instant query: the first result's value.
  static std::optional<double> Query(int port, const std::string& promql) {
    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(5, 0);
    auto response = client.Get("/api/v1/query", httplib::Params{{"query", promql}}, {});
    if (!response || response->status != 200) return std::nullopt;
    auto json = nlohmann::json::parse(response->body, nullptr, false);
    if (json.is_discarded() || json["status"] != "success") return std::nullopt;
    const auto& result = json["data"]["result"];
    if (!result.is_array() || result.empty()) return std::nullopt;
    return std::stod(result[0]["value"][1].get<std::string>());
  }

  // A service that crashes (exit 1) its first `crashes` starts, then stays up.
  std::vector<std::string> CrashThenStay(int crashes, const std::string& starts) const {
    return {"/bin/sh", "-c",
            fmt::format("echo $$ >> '{0}'; [ $(wc -l < '{0}') -gt {1} ] && exec sleep 600; "
                        "kill -SEGV $$",
                        starts, crashes)};
  }

  blackbox::testing::TempDir tmp_;
  std::string dir_ = tmp_.path();
  std::vector<std::unique_ptr<Process>> watchdogs_;
  std::unique_ptr<Process> prometheus_;
};

TEST_F(MetricsTest, ServesTheExpositionFormatAndNothingElse) {
  const std::string address =
      StartWatchdog({"--restart-delay", "0.05"}, CrashThenStay(2, file("starts")));
  ASSERT_FALSE(address.empty()) << ReadFile(file("wd.err"));
  EXPECT_NE(address, "127.0.0.1:0");  // the port actually bound
  ASSERT_TRUE(WaitFor([&] { return Lines(file("starts")).size() == 3; }, 10));
  std::string type;
  std::string text;
  ASSERT_TRUE(WaitFor(
      [&] {
        text = Scrape(address, &type);
        return Sample(text, "blackbox_restarts_total{reason=\"crash\"}") == 2.0;
      },
      10))
      << text;
  EXPECT_EQ(type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(Sample(text, "blackbox_crashes_total{signal=\"SIGSEGV\"}"), 2.0);
  EXPECT_EQ(Sample(text, "blackbox_child_running"), 1.0);
  EXPECT_EQ(Sample(text, "blackbox_restart_budget_remaining"), 8.0);  // of the default 10

  httplib::Client client("http://" + address);
  auto other = client.Get("/");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 404);
  other = client.Get("/metrics/x");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 404);
}

TEST_F(MetricsTest, PromtoolFindsNothingWrongInTheExposition) {
  if (!fs::exists(kPromtool)) GTEST_SKIP() << kPromtool << " is missing (Debian: prometheus)";
  const std::string address =
      StartWatchdog({"--restart-delay", "0.05"}, CrashThenStay(1, file("starts")));
  ASSERT_FALSE(address.empty()) << ReadFile(file("wd.err"));
  std::string text;
  ASSERT_TRUE(WaitFor(
      [&] {
        text = Scrape(address);
        return Sample(text, "blackbox_restarts_total{reason=\"crash\"}") == 1.0;
      },
      10));
  blackbox::testing::WriteFile(file("served.prom"), text);
  blackbox::testing::RunOptions stdin_from;
  stdin_from.stdin_path = file("served.prom");
  auto check = blackbox::testing::RunProcess({kPromtool, "check", "metrics"}, stdin_from);
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  EXPECT_EQ(check.out + check.err, "");

  // The same exposition offline, written atomically as a textfile.
  auto offline = blackbox::testing::RunProcess(
      {kTool, "metrics", "--journal", journal(), "--textfile", file("offline.prom")});
  ASSERT_EQ(offline.exit_code, 0) << offline.err;
  const std::string written = ReadFile(file("offline.prom"));
  EXPECT_EQ(Sample(written, "blackbox_restarts_total{reason=\"crash\"}"), 1.0);
  EXPECT_EQ(fs::status(file("offline.prom")).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  stdin_from.stdin_path = file("offline.prom");
  check = blackbox::testing::RunProcess({kPromtool, "check", "metrics"}, stdin_from);
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  EXPECT_EQ(check.out + check.err, "");
}

TEST_F(MetricsTest, PrometheusScrapesTheRestartsTheJournalHolds) {
  if (!fs::exists(kPrometheus)) {
    GTEST_SKIP() << kPrometheus << " is missing (Debian: prometheus, see scripts/deps.sh)";
  }
  const std::string address = StartWatchdog({"--restart-delay", "0.3", "--max-restarts", "100"},
                                            CrashThenStay(4, file("starts")));
  ASSERT_FALSE(address.empty()) << ReadFile(file("wd.err"));
  const int port = StartPrometheus(address);
  // The child crash-loops while Prometheus scrapes, then stays up.
  ASSERT_TRUE(WaitFor([&] { return Lines(file("starts")).size() == 5; }, 20))
      << ReadFile(file("wd.err"));
  // The Restart event is journaled once the new child exists, by the
  // journal's thread: it can come a little after that child's first line.
  int restarts = 0;
  EXPECT_TRUE(WaitFor([&] { return (restarts = JournalRestarts()) == 4; }, 10))
      << restarts << " restarts journaled";
  std::optional<double> scraped;
  EXPECT_TRUE(WaitFor(
      [&] {
        scraped = Query(port, "sum(blackbox_restarts_total)");
        return scraped == static_cast<double>(restarts);
      },
      30))
      << "Prometheus says " << scraped.value_or(-1) << "; " << ReadFile(file("prometheus.err"));
  EXPECT_EQ(Query(port, "blackbox_restarts_total{reason=\"crash\"}"), restarts);
  EXPECT_EQ(Query(port, "blackbox_child_running"), 1.0);
  EXPECT_EQ(Query(port, "up{job=\"blackbox\"}"), 1.0);
}

TEST_F(MetricsTest, CountersKeepTheirValuesAcrossASigkilledWatchdog) {
  const std::string first =
      StartWatchdog({"--restart-delay", "0.05"}, CrashThenStay(3, file("starts")), "wd1");
  ASSERT_FALSE(first.empty()) << ReadFile(file("wd1.err"));
  ASSERT_TRUE(WaitFor(
      [&] { return Sample(Scrape(first), "blackbox_restarts_total{reason=\"crash\"}") == 3.0; },
      10));
  watchdogs_.back()->Kill(SIGKILL);

  // A new watchdog on the same journal: its child stays up (no crash of its
  // own), and the counters go on from where the journal left them.
  const std::string second = StartWatchdog({}, {kChild, "sleep", file("pid")}, "wd2", first);
  ASSERT_FALSE(second.empty()) << ReadFile(file("wd2.err"));
  std::string text;
  ASSERT_TRUE(WaitFor(
      [&] {
        text = Scrape(second);
        return Sample(text, "blackbox_child_running") == 1.0;
      },
      10))
      << text;
  EXPECT_EQ(Sample(text, "blackbox_restarts_total{reason=\"crash\"}"), 3.0);
  EXPECT_EQ(Sample(text, "blackbox_crashes_total{signal=\"SIGSEGV\"}"), 3.0);
  // The budget belongs to the watchdog's run: the new one has all of it.
  EXPECT_EQ(Sample(text, "blackbox_restart_budget_remaining"), 10.0);
}

// A client that sends a request and never reads, one that sends a byte a
// second, and a flood of connections: the crash-to-restart path is the
// loop's, and none of them is on it.
TEST_F(MetricsTest, StalledClientsDoNotDelayARestart) {
  const std::string address = StartWatchdog({"--restart-delay", "0", "--max-restarts", "100"},
                                            {kChild, "sleep", file("pids")});
  ASSERT_FALSE(address.empty()) << ReadFile(file("wd.err"));
  const int port = std::stoi(address.substr(address.rfind(':') + 1));
  ASSERT_TRUE(WaitFor([&] { return Lines(file("pids")).size() == 1; }, 10));

  std::vector<int> held;
  // Never reads: many pipelined requests, so that responses pile up unread.
  const int never_reads = Connect(port);
  ASSERT_GE(never_reads, 0);
  held.push_back(never_reads);
  std::string requests;
  for (int i = 0; i < 200; ++i) requests += "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_GT(::send(never_reads, requests.data(), requests.size(), MSG_NOSIGNAL), 0);
  // Idle connections, more than the server has threads.
  for (int i = 0; i < 8; ++i) {
    const int fd = Connect(port);
    ASSERT_GE(fd, 0);
    held.push_back(fd);
  }
  const int slow = Connect(port);
  ASSERT_GE(slow, 0);
  held.push_back(slow);
  std::atomic<bool> done{false};
  std::thread trickle([&] {
    const std::string request = "GET /metrics HTTP/1.1\r\nHost: x\r\n";
    for (size_t i = 0; !done && i < request.size(); ++i) {
      ::send(slow, &request[i], 1, MSG_NOSIGNAL);
      for (int t = 0; t < 10 && !done; ++t) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));

  // Three crashes; each restart is measured from the kill to the new pid.
  double worst = 0;
  for (int i = 1; i <= 3; ++i) {
    const pid_t child = std::stoi(Lines(file("pids")).back());
    const auto killed = Clock::now();
    ASSERT_EQ(::kill(child, SIGKILL), 0);
    ASSERT_TRUE(
        WaitFor([&] { return Lines(file("pids")).size() == static_cast<size_t>(i + 1); }, 10))
        << "no restart while /metrics clients stall";
    worst = std::max(worst, std::chrono::duration<double>(Clock::now() - killed).count());
  }
  done = true;
  trickle.join();
  for (int fd : held) ::close(fd);
  // Generous: a restart takes milliseconds; a server on the loop's path
  // would hold it for its 2 s timeouts.
  EXPECT_LT(worst, 1.5);
  // The last Restart event may be journaled just after its child's pid.
  EXPECT_TRUE(WaitFor([&] { return JournalRestarts() == 3; }, 10)) << JournalRestarts();
}

TEST_F(MetricsTest, APortInUseIsRefusedAtStartAndNothingIsSaved) {
  const int busy = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(busy, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(busy, 1), 0);
  ASSERT_EQ(::getsockname(busy, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string taken = fmt::format("127.0.0.1:{}", ntohs(addr.sin_port));
  auto result = blackbox::testing::RunProcess({kWatchdog, "--journal", journal(), "--state-dir",
                                               file("state"), "--metrics-listen", taken, "--",
                                               kChild, "sleep", file("pid")});
  ::close(busy);
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_EQ(result.err.rfind("blackbox-watchdog: --metrics-listen: ", 0), 0u) << result.err;
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
  EXPECT_FALSE(fs::exists(file("state/watchdog.toml")));
  EXPECT_FALSE(fs::exists(file("pid")));  // no child was started

  result = blackbox::testing::RunProcess({kWatchdog, "--journal", journal(), "--state-dir",
                                          file("state"), "--metrics-listen", "localhost", "--",
                                          kChild, "sleep", file("pid")});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_EQ(result.err.rfind("blackbox-watchdog: --metrics-listen: ", 0), 0u) << result.err;
}

// The alert programs of these tests: a script that records its BLACKBOX_*
// environment in DIR/KIND.PID, one line per variable.
std::string RecorderScript(const std::string& path, const std::string& dir) {
  blackbox::testing::WriteFile(
      // Written under another name and renamed, so that a reader never sees
      // the file before its variables are in it.
      path, fmt::format("#!/bin/sh\nenv | grep '^BLACKBOX_' > '{0}/'.tmp.$$ && "
                        "mv '{0}/'.tmp.$$ '{0}/'\"$BLACKBOX_ALERT.$$\"\n",
                        dir));
  fs::permissions(path, fs::perms::owner_all);
  return path;
}

// KEY=VALUE lines of every file DIR/KIND.*, one map per file.
std::vector<std::map<std::string, std::string>> Recorded(const std::string& dir,
                                                         std::string_view kind) {
  std::vector<std::map<std::string, std::string>> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with(std::string(kind) + ".")) continue;
    std::map<std::string, std::string> vars;
    for (const std::string& line : Lines(entry.path().string())) {
      const size_t eq = line.find('=');
      if (eq != std::string::npos) vars[line.substr(0, eq)] = line.substr(eq + 1);
    }
    out.push_back(std::move(vars));
  }
  return out;
}

class AlertTest : public MetricsTest {
 protected:
  std::vector<std::string> Watchdog(std::vector<std::string> options,
                                    const std::vector<std::string>& command) const {
    std::vector<std::string> args = {kWatchdog, "--journal", journal(), "--state-dir",
                                     file("state")};
    args.insert(args.end(), options.begin(), options.end());
    args.push_back("--");
    args.insert(args.end(), command.begin(), command.end());
    return args;
  }
  std::vector<std::unique_ptr<fb::CallbackT>> AlertRuns() const {
    std::vector<std::unique_ptr<fb::CallbackT>> runs;
    auto reader = blackbox::Reader::Open(journal(), blackbox::kWatchdogStream);
    if (!reader.ok()) return runs;
    reader.value()->Scan({}, [&](const blackbox::Record& r) {
      const fb::Callback* c = r.event->payload_as_Callback();
      if (c != nullptr && c->kind() == fb::CallbackKind::Alert) runs.emplace_back(c->UnPack());
      return true;
    });
    return runs;
  }
};

// The demo segfaults on its second order every run: the first crash alert
// carries every variable (the frame from the restarted app's crash record),
// the next crashes are held back by --alert-interval, and the spent budget
// is a gave-up alert before the watchdog exits.
TEST_F(AlertTest, AlertExecGetsEveryVariableOncePerInterval) {
  fs::create_directory(file("alerts"));
  const std::string script = RecorderScript(file("record.sh"), file("alerts"));
  // The demo writes its system_state.json in its working directory: this test's.
  const fs::path cwd = fs::current_path();
  fs::current_path(dir_);
  Process wd(Watchdog({"--restart-delay", "0.2", "--max-restarts", "2", "--alert-exec", script},
                      {kDemo, "--segfault-after", "2", "--interval-ms", "50"}),
             file("wd.out"), file("wd.err"));
  fs::current_path(cwd);
  ASSERT_EQ(wd.Wait(30), 1) << ReadFile(file("wd.err"));

  auto crashes = Recorded(file("alerts"), "crash");
  ASSERT_EQ(crashes.size(), 1u) << "one crash alert per --alert-interval (60 s)";
  auto& a = crashes[0];
  EXPECT_EQ(a["BLACKBOX_ALERT"], "crash");
  EXPECT_EQ(a["BLACKBOX_SERVICE"], "blackbox-demo");
  EXPECT_EQ(a["BLACKBOX_SIGNAL"], "SIGSEGV");
  EXPECT_EQ(a["BLACKBOX_EXIT_CODE"], "-1");
  EXPECT_EQ(a["BLACKBOX_RESTARTS"], "1");
  EXPECT_EQ(a["BLACKBOX_JOURNAL"], journal());
  EXPECT_EQ(a["BLACKBOX_SUPPRESSED"], "0");
  EXPECT_NE(a["BLACKBOX_FRAME"].find("route_order_with_corrupt_book"), std::string::npos)
      << a["BLACKBOX_FRAME"];
  const std::string pid = a["BLACKBOX_CHILD_PID"];
  EXPECT_EQ(a["BLACKBOX_SUMMARY"],
            fmt::format("blackbox-demo pid {} died of SIGSEGV in {}; restart 1 of 2", pid,
                        a["BLACKBOX_FRAME"]));
  auto event = nlohmann::json::parse(a["BLACKBOX_EVENT"], nullptr, false);
  ASSERT_FALSE(event.is_discarded()) << a["BLACKBOX_EVENT"];
  EXPECT_EQ(event["type"], "crash");
  EXPECT_EQ(event["stream"], "watchdog");
  EXPECT_EQ(std::to_string(event["crashed_pid"].get<int>()), pid);

  auto gave_up = Recorded(file("alerts"), "gave-up");
  ASSERT_EQ(gave_up.size(), 1u);
  EXPECT_EQ(gave_up[0]["BLACKBOX_RESTARTS"], "3");
  EXPECT_NE(gave_up[0]["BLACKBOX_SUMMARY"].find("the watchdog gives up"), std::string::npos);

  // Each run is journaled with its status and duration.
  auto runs = AlertRuns();
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0]->name, "alert-exec crash " + script);
  EXPECT_TRUE(runs[0]->ok) << runs[0]->error;
  EXPECT_GT(runs[0]->duration_us, 0);
  EXPECT_EQ(runs[1]->name, "alert-exec gave-up " + script);
}

TEST_F(AlertTest, RecoveredAfterAStableRunAndSuppressedCountsReported) {
  fs::create_directory(file("alerts"));
  const std::string script = RecorderScript(file("record.sh"), file("alerts"));
  Process wd(Watchdog({"--restart-delay", "0.05", "--restart-window", "1", "--alert-interval", "0",
                       "--alert-exec", script},
                      CrashThenStay(2, file("starts"))),
             file("wd.out"), file("wd.err"));
  ASSERT_TRUE(WaitFor([&] { return Recorded(file("alerts"), "recovered").size() == 1; }, 15))
      << ReadFile(file("wd.err"));
  EXPECT_EQ(Recorded(file("alerts"), "crash").size(), 2u);  // interval 0: nothing held back
  auto recovered = Recorded(file("alerts"), "recovered")[0];
  EXPECT_EQ(recovered["BLACKBOX_ALERT"], "recovered");
  EXPECT_EQ(recovered["BLACKBOX_CHILD_PID"], Lines(file("starts")).back());
  EXPECT_EQ(recovered["BLACKBOX_SIGNAL"], "");
}

// The application's own health monitor forecasts its memory (not the
// watchdog's forecaster: no --max-memory here). The watchdog follows the
// app's stream: the forecast raises the alert `forecast` with the app's
// message, and /metrics shows it as source="app" while it holds.
TEST_F(AlertTest, TheAppsOwnForecastRaisesAnAlertAndShowsInTheMetrics) {
  fs::create_directory(file("alerts"));
  const std::string script = RecorderScript(file("record.sh"), file("alerts"));
  const std::string address =
      StartWatchdog({"--name", "leaky", "--alert-interval", "0", "--alert-exec", script,
                     "--restart", "always", "--restart-delay", "2"},
                    {kCrashyChild, "leak", journal()});
  ASSERT_FALSE(address.empty()) << ReadFile(file("wd.err"));
  const std::string series = "blackbox_memory_exhaustion_seconds{source=\"app\"}";
  std::optional<double> seconds;
  ASSERT_TRUE(WaitFor([&] { return (seconds = Sample(Scrape(address), series)).has_value(); }, 15))
      << ReadFile(file("wd.err"));
  EXPECT_GT(*seconds, 0);
  EXPECT_LT(*seconds, 600);
  ASSERT_TRUE(WaitFor([&] { return !Recorded(file("alerts"), "forecast").empty(); }, 15))
      << ReadFile(file("wd.err"));
  auto alert = Recorded(file("alerts"), "forecast")[0];
  EXPECT_EQ(alert["BLACKBOX_SERVICE"], "leaky");
  EXPECT_EQ(
      alert["BLACKBOX_SUMMARY"].rfind("leaky pid " + alert["BLACKBOX_CHILD_PID"] + ": rss ", 0), 0u)
      << alert["BLACKBOX_SUMMARY"];
  EXPECT_NE(alert["BLACKBOX_SUMMARY"].find("reaches the 400 MB limit"), std::string::npos)
      << alert["BLACKBOX_SUMMARY"];
  auto event = nlohmann::json::parse(alert["BLACKBOX_EVENT"], nullptr, false);
  ASSERT_FALSE(event.is_discarded()) << alert["BLACKBOX_EVENT"];
  EXPECT_EQ(event["type"], "forecast");
  EXPECT_EQ(event["stream"], "app");
  EXPECT_EQ(event["resource"], "rss");
  // The run ends (a clean exit after 3 s; the next starts 2 s later): the
  // forecast no longer holds, while the watchdog still serves.
  EXPECT_TRUE(WaitFor(
      [&] {
        const std::string text = Scrape(address);
        return !text.empty() && !Sample(text, series).has_value();
      },
      15));
}

// The alert names the service by the watchdog's --name, not the command's
// base name; a restart on request (--restart) is no crash and raises no
// alert: the only crash alert is the SIGKILL's after it.
TEST_F(AlertTest, AlertsUseTheWatchdogsNameAndAManualRestartRaisesNone) {
  fs::create_directory(file("alerts"));
  const std::string script = RecorderScript(file("record.sh"), file("alerts"));
  Process wd(Watchdog({"--name", "pricing", "--restart-delay", "0", "--alert-interval", "0",
                       "--alert-exec", script},
                      {kChild, "sleep", file("pids")}),
             file("wd.out"), file("wd.err"));
  ASSERT_TRUE(WaitFor([&] { return Lines(file("pids")).size() == 1; }, 10))
      << ReadFile(file("wd.err"));
  auto restarted = blackbox::testing::RunProcess(
      {kWatchdog, "--restart", "--state-dir", file("state"), "--journal", journal()});
  ASSERT_EQ(restarted.exit_code, 0) << restarted.out << restarted.err;
  ASSERT_TRUE(WaitFor([&] { return Lines(file("pids")).size() == 2; }, 10));
  const std::string second = Lines(file("pids"))[1];
  ::kill(std::stoi(second), SIGKILL);
  ASSERT_TRUE(WaitFor([&] { return Lines(file("pids")).size() == 3; }, 10));
  // Alerts run one after another and each run is journaled when it ends:
  // when the SIGKILL's has been journaled, any earlier one has too.
  auto killed_alert_ran = [&] {
    const auto recorded = Recorded(file("alerts"), "crash");
    const bool seen = std::any_of(recorded.begin(), recorded.end(), [&](const auto& vars) {
      return vars.count("BLACKBOX_CHILD_PID") > 0 && vars.at("BLACKBOX_CHILD_PID") == second;
    });
    return seen && AlertRuns().size() >= recorded.size();
  };
  ASSERT_TRUE(WaitFor(killed_alert_ran, 10)) << ReadFile(file("wd.err"));
  auto crashes = Recorded(file("alerts"), "crash");
  ASSERT_EQ(crashes.size(), 1u);
  EXPECT_EQ(crashes[0]["BLACKBOX_SERVICE"], "pricing");
  EXPECT_EQ(crashes[0]["BLACKBOX_CHILD_PID"], second);
  EXPECT_EQ(crashes[0]["BLACKBOX_SUMMARY"].rfind("pricing pid " + second, 0), 0u)
      << crashes[0]["BLACKBOX_SUMMARY"];
}

TEST_F(AlertTest, AHangingAlertProgramIsKilledAndDelaysNoRestart) {
  blackbox::testing::WriteFile(file("hang.sh"), "#!/bin/sh\nsleep 30\n");
  fs::permissions(file("hang.sh"), fs::perms::owner_all);
  Process wd(Watchdog({"--restart-delay", "0", "--alert-timeout", "2", "--alert-interval", "0",
                       "--alert-exec", file("hang.sh")},
                      {kChild, "sleep", file("pids")}),
             file("wd.out"), file("wd.err"));
  ASSERT_TRUE(WaitFor([&] { return Lines(file("pids")).size() == 1; }, 10));
  for (size_t i = 1; i <= 3; ++i) {
    const auto killed = Clock::now();
    ASSERT_EQ(::kill(std::stoi(Lines(file("pids")).back()), SIGKILL), 0);
    ASSERT_TRUE(WaitFor([&] { return Lines(file("pids")).size() == i + 1; }, 10));
    // Generous: a restart takes milliseconds, the alert program 2 s.
    EXPECT_LT(std::chrono::duration<double>(Clock::now() - killed).count(), 1.0);
  }
  ASSERT_TRUE(WaitFor([&] { return AlertRuns().size() == 3; }, 20));
  for (const auto& run : AlertRuns()) {
    EXPECT_FALSE(run->ok);
    EXPECT_NE(run->error.find("killed"), std::string::npos) << run->error;
    EXPECT_GE(run->duration_us, 2'000'000);
    EXPECT_LT(run->duration_us, 8'000'000);
  }
}

TEST_F(AlertTest, BadAlertValuesAreRefusedAtStart) {
  blackbox::testing::WriteFile(file("plain.txt"), "not a program\n");
  fs::permissions(file("plain.txt"), fs::perms::owner_read | fs::perms::owner_write);
  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{"--alert-exec", file("missing")},
        std::vector<std::string>{"--alert-exec", file("plain.txt")},
        std::vector<std::string>{"--alert-timeout", "0"},
        std::vector<std::string>{"--alert-interval", "-1"},
        std::vector<std::string>{"--alertmanager", "127.0.0.1:9093"},
        std::vector<std::string>{"--alertmanager", "http://127.0.0.1"},
        std::vector<std::string>{"--alertmanager", "http://127.0.0.1:99999"}}) {
    auto result = blackbox::testing::RunProcess(Watchdog(bad, {kChild, "sleep", file("pid")}));
    EXPECT_EQ(result.exit_code, 2) << bad[0] << " " << bad[1];
    EXPECT_EQ(result.err.rfind("blackbox-watchdog: " + bad[0] + ": ", 0), 0u) << result.err;
    EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
    EXPECT_FALSE(fs::exists(file("state/watchdog.toml")));
    EXPECT_FALSE(fs::exists(file("pid")));
  }
}

// An --error-pattern before `--` takes one value, not the command.
const std::string kAlertmanager = "/usr/bin/prometheus-alertmanager";

class AlertmanagerTest : public AlertTest {
 protected:
  // Starts a real Alertmanager (no cluster, a receiver that drops) on a free
  // loopback port and waits until it is ready; returns its port.
  int StartAlertmanager() {
    const int port = FreePort();
    std::ofstream(file("alertmanager.yml")) << "route:\n"
                                               "  receiver: drop\n"
                                               "receivers:\n"
                                               "  - name: drop\n";
    alertmanager_ = std::make_unique<Process>(
        std::vector<std::string>{kAlertmanager, "--config.file=" + file("alertmanager.yml"),
                                 "--storage.path=" + file("am-data"),
                                 fmt::format("--web.listen-address=127.0.0.1:{}", port),
                                 "--cluster.listen-address="},
        file("alertmanager.out"), file("alertmanager.err"));
    const bool ready = WaitFor(
        [&] {
          httplib::Client client("127.0.0.1", port);
          auto r = client.Get("/-/ready");
          return r && r->status == 200;
        },
        30);
    return ready ? port : -1;
  }
  // The alerts Alertmanager holds now named `name`.
  static std::vector<nlohmann::json> Alerts(int port, const std::string& name) {
    std::vector<nlohmann::json> out;
    httplib::Client client("127.0.0.1", port);
    auto r = client.Get("/api/v2/alerts");
    if (!r || r->status != 200) return out;
    auto json = nlohmann::json::parse(r->body, nullptr, false);
    if (!json.is_array()) return out;
    for (const auto& a : json) {
      if (a["labels"].value("alertname", "") == name) out.push_back(a);
    }
    return out;
  }
  // Unix time of an RFC 3339 time with fractional seconds ("…T22:30:00.123Z"
  // or "…T22:30:00.123456789Z", as Alertmanager writes).
  static double UnixTime(const std::string& text) {
    struct tm tm {};
    const char* rest = ::strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
    if (rest == nullptr) return 0;
    double fraction = 0;
    if (*rest == '.') fraction = std::stod(std::string("0") + rest);
    return static_cast<double>(::timegm(&tm)) + fraction;
  }
  std::optional<double> WatchdogCrashTime() const {
    std::optional<double> t;
    auto reader = blackbox::Reader::Open(journal(), blackbox::kWatchdogStream);
    if (!reader.ok()) return t;
    reader.value()->Scan({}, [&](const blackbox::Record& r) {
      if (r.event->payload_type() == fb::Payload::Crash) t = r.event->time_ns() / 1e9;
      return !t;
    });
    return t;
  }
  void TearDown() override {
    alertmanager_.reset();
    AlertTest::TearDown();
  }
  std::unique_ptr<Process> alertmanager_;
};

// The demo segfaults once, then runs: a real Alertmanager has the
// BlackboxCrash alert, with the signal and the crashing function, within 2 s
// of the crash; after a stable run (the restart window) it is resolved.
TEST_F(AlertmanagerTest, ARealAlertmanagerGetsTheCrashAndItsResolution) {
  if (access(kAlertmanager.c_str(), X_OK) != 0) GTEST_SKIP() << "needs " << kAlertmanager;
  const int port = StartAlertmanager();
  ASSERT_GT(port, 0) << ReadFile(file("alertmanager.err"));
  const std::string starts = file("starts");
  const std::vector<std::string> service = {
      "/bin/sh", "-c",
      fmt::format("echo $$ >> '{0}'; if [ $(wc -l < '{0}') -gt 1 ]; then exec '{1}' "
                  "--interval-ms 50; else exec '{1}' --segfault-after 2 --interval-ms 50; fi",
                  starts, kDemo)};
  const fs::path cwd = fs::current_path();
  fs::current_path(dir_);  // the demo's system_state.json
  Process wd(Watchdog({"--restart-delay", "0.1", "--restart-window", "3", "--alertmanager",
                       fmt::format("http://127.0.0.1:{}", port)},
                      service),
             file("wd.out"), file("wd.err"));
  fs::current_path(cwd);

  std::vector<nlohmann::json> firing;
  ASSERT_TRUE(WaitFor([&] { return !(firing = Alerts(port, "BlackboxCrash")).empty(); }, 20))
      << ReadFile(file("wd.err"));
  const nlohmann::json& a = firing[0];
  EXPECT_EQ(a["labels"]["service"], "sh");
  EXPECT_EQ(a["labels"]["severity"], "warning");
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  EXPECT_EQ(a["labels"]["instance"], host);
  EXPECT_EQ(a["annotations"]["signal"], "SIGSEGV");
  EXPECT_NE(a["annotations"]["frame"].get<std::string>().find("route_order_with_corrupt_book"),
            std::string::npos)
      << a.dump();
  EXPECT_NE(a["annotations"]["summary"].get<std::string>().find("died of SIGSEGV in"),
            std::string::npos);
  EXPECT_EQ(a["annotations"]["restarts"], "1");
  // Received (Alertmanager's updatedAt) within 2 s of the watchdog seeing the crash.
  std::optional<double> crashed = WatchdogCrashTime();
  ASSERT_TRUE(crashed);
  const double latency = UnixTime(a["updatedAt"].get<std::string>()) - *crashed;
  std::printf("crash to Alertmanager: %.3f s\n", latency);
  EXPECT_LT(latency, 2.0) << a.dump();
  EXPECT_GE(latency, 0.0) << a.dump();

  // Resolved after the stable run: gone from Alertmanager's active alerts.
  EXPECT_TRUE(WaitFor([&] { return Alerts(port, "BlackboxCrash").empty(); }, 20))
      << Alerts(port, "BlackboxCrash")[0].dump();
  // The deliveries were journaled, no outage.
  for (const auto& run : AlertRuns()) EXPECT_TRUE(run->ok) << run->name << ": " << run->error;
}

// A child leaking 20 MB/s under a 160 MB limit: a real Alertmanager holds
// the BlackboxMemoryForecast alert, with the forecast's projection in its
// summary, before the watchdog's memory limit stops the child.
TEST_F(AlertmanagerTest, AMemoryForecastReachesARealAlertmanagerBeforeTheLimit) {
  if (access(kAlertmanager.c_str(), X_OK) != 0) GTEST_SKIP() << "needs " << kAlertmanager;
  const int port = StartAlertmanager();
  ASSERT_GT(port, 0) << ReadFile(file("alertmanager.err"));
  Process wd(
      Watchdog({"--name", "leaky", "--max-memory", "160", "--max-cpu", "1000",
                "--health-check-interval", "0.1", "--limit-cycles", "2", "--stop-timeout", "1",
                "--max-restarts", "0", "--alertmanager", fmt::format("http://127.0.0.1:{}", port)},
               {kChild, "leak", "20", file("starts")}),
      file("wd.out"), file("wd.err"));
  std::vector<nlohmann::json> firing;
  ASSERT_TRUE(
      WaitFor([&] { return !(firing = Alerts(port, "BlackboxMemoryForecast")).empty(); }, 30))
      << ReadFile(file("wd.err"));
  const double received = UnixTime(firing[0]["updatedAt"].get<std::string>());
  const nlohmann::json& a = firing[0];
  EXPECT_EQ(a["labels"]["service"], "leaky");
  const std::string summary = a["annotations"]["summary"].get<std::string>();
  EXPECT_EQ(summary.rfind("leaky", 0), 0u) << summary;
  EXPECT_NE(summary.find("reaches the 160 MB limit in ~"), std::string::npos) << summary;

  // The limit stop comes after the alert was received.
  ASSERT_EQ(wd.Wait(60), 1) << ReadFile(file("wd.err"));  // --max-restarts 0: gave up
  std::optional<double> stopped;
  auto reader = blackbox::Reader::Open(journal(), blackbox::kWatchdogStream);
  ASSERT_TRUE(reader.ok());
  reader.value()->Scan({}, [&](const blackbox::Record& r) {
    if (const fb::Limit* l = r.event->payload_as_Limit(); l != nullptr &&
                                                          l->kind() == fb::LimitKind::Memory &&
                                                          l->action() != fb::LimitAction::Warn) {
      stopped = r.event->time_ns() / 1e9;
    }
    return !stopped;
  });
  ASSERT_TRUE(stopped) << "no memory limit stop";
  std::printf("forecast alert received %.2f s before the limit stop\n", *stopped - received);
  EXPECT_LT(received, *stopped) << a.dump();
}

// Nothing listens at the Alertmanager's address: restarts are as fast as
// ever, and the outage is journaled once, not once per attempt.
TEST_F(AlertmanagerTest, AnUnreachableAlertmanagerDelaysNoRestart) {
  const int port = FreePort();
  Process wd(Watchdog({"--restart-delay", "0", "--alert-interval", "0", "--alertmanager",
                       fmt::format("http://127.0.0.1:{}", port)},
                      {kChild, "sleep", file("pids")}),
             file("wd.out"), file("wd.err"));
  ASSERT_TRUE(WaitFor([&] { return Lines(file("pids")).size() == 1; }, 10));
  for (size_t i = 1; i <= 3; ++i) {
    const auto killed = Clock::now();
    ASSERT_EQ(::kill(std::stoi(Lines(file("pids")).back()), SIGKILL), 0);
    ASSERT_TRUE(WaitFor([&] { return Lines(file("pids")).size() == i + 1; }, 10));
    // Generous: a restart takes milliseconds.
    EXPECT_LT(std::chrono::duration<double>(Clock::now() - killed).count(), 1.0);
  }
  ASSERT_TRUE(WaitFor([&] { return !AlertRuns().empty(); }, 10));
  std::this_thread::sleep_for(std::chrono::seconds(3));  // retries happen meanwhile
  auto runs = AlertRuns();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0]->name, fmt::format("alertmanager http://127.0.0.1:{}", port));
  EXPECT_FALSE(runs[0]->ok);
  EXPECT_NE(runs[0]->error.find("cannot post alerts"), std::string::npos) << runs[0]->error;
}

}  // namespace
