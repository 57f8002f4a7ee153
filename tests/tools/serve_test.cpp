// `blackbox serve` end to end: a real server process on port 0 over the
// fixture journal, asked over HTTP by httplib's client.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "blackbox/journal.h"
#include "blackbox/state_io.h"
#include "tool_test_support.h"

namespace blackbox::tools::testing {
namespace {

using nlohmann::json;

// A running `blackbox serve`; killed and reaped on destruction.
class Server {
 public:
  explicit Server(const std::vector<std::string>& extra_args) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    std::vector<std::string> argv = {BLACKBOX_TOOL, "serve"};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    ::blackbox::testing::RunOptions options;
    options.env = ToolEnvironment();
    int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    pid_ = ::blackbox::testing::StartProcess(argv, options, null, out[1], null);
    ::close(null);
    ::close(out[1]);
    // The first line is the URL, written once the socket is bound.
    char c;
    while (::read(out[0], &c, 1) == 1 && c != '\n') url_ += c;
    ::close(out[0]);
  }
  ~Server() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  const std::string& url() const { return url_; }
  // "http://127.0.0.1:PORT/" -> "http://127.0.0.1:PORT"
  httplib::Client Client() const {
    httplib::Client client(url_.substr(0, url_.size() - 1));
    client.set_read_timeout(10, 0);
    return client;
  }

 private:
  pid_t pid_ = -1;
  std::string url_;
};

class ServeTest : public ::testing::Test {
 protected:
  void SetUp() override { WriteFixtureJournal(root_); }
  TempDir dir_;
  std::string root_ = dir_ / "journal";
};

json Get(httplib::Client& client, const std::string& path, int expect_status = 200) {
  httplib::Result r = client.Get(path);
  EXPECT_TRUE(r) << path;
  if (!r) return json();
  EXPECT_EQ(r->status, expect_status) << path << ": " << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/json") << path;
  return json::parse(r->body);
}

TEST_F(ServeTest, PrintsTheUrlItBoundOnPortZero) {
  Server server({"--journal", root_, "--listen", "127.0.0.1:0"});
  ASSERT_EQ(server.url().rfind("http://127.0.0.1:", 0), 0u) << server.url();
  EXPECT_NE(server.url(), "http://127.0.0.1:0/");
}

TEST_F(ServeTest, EventsAreReplaysJson) {
  Server server({"--journal", root_, "--listen", "127.0.0.1:0"});
  httplib::Client client = server.Client();
  ToolResult replay = RunTool({"replay", "--journal", root_, "--json", "--type", "error"});
  ASSERT_EQ(replay.exit_code, 0) << replay.err;
  json want = json::array();
  for (const std::string& line : Lines(replay.out)) want.push_back(json::parse(line));
  json got = Get(client, "/api/events?type=error");
  EXPECT_EQ(got["events"], want);
  EXPECT_EQ(got["damaged"], 0);
  EXPECT_EQ(got["truncated"], false);

  json all = Get(client, "/api/events");
  EXPECT_EQ(all["events"].size(), size_t{kFixtureAppEvents + kFixtureWatchdogEvents});
  json two = Get(client, "/api/events?limit=2&stream=app");
  ASSERT_EQ(two["events"].size(), 2u);
  EXPECT_EQ(two["events"][1]["seq"], kFixtureAppEvents);  // the newest two
  EXPECT_EQ(two["truncated"], true);
}

TEST_F(ServeTest, StateIsStateJson) {
  Server server({"--journal", root_, "--listen", "127.0.0.1:0"});
  httplib::Client client = server.Client();
  ToolResult state =
      RunTool({"state", "--journal", root_, "--json", "--at", "2026-01-15T10:30:03Z"});
  ASSERT_EQ(state.exit_code, 0) << state.err;
  json got = Get(client, "/api/state?at=2026-01-15T10:30:03Z");
  EXPECT_EQ(got["damaged"], 0);
  got.erase("damaged");
  EXPECT_EQ(got, json::parse(state.out));
}

TEST_F(ServeTest, CrashesAreThoseOfTheCrashesCommand) {
  Server server({"--journal", root_, "--listen", "127.0.0.1:0"});
  httplib::Client client = server.Client();
  ToolResult crashes = RunTool({"crashes", "--journal", root_, "--json"});
  ASSERT_EQ(crashes.exit_code, 0) << crashes.err;
  std::vector<std::string> lines = Lines(crashes.out);
  json got = Get(client, "/api/crashes");
  ASSERT_EQ(got["crashes"].size(), lines.size());
  ASSERT_FALSE(lines.empty());
  for (size_t i = 0; i < lines.size(); ++i) {
    json c = got["crashes"][i];
    EXPECT_EQ(c["number"], i + 1);
    EXPECT_EQ(c, json::parse(lines[i]));  // one incident per death, as `crashes --json`
  }

  ToolResult show = RunTool({"crashes", "--journal", root_, "show", "1", "--json"});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  json want = json::parse(show.out);
  json one = Get(client, "/api/crashes/1");
  EXPECT_EQ(one["crash"], want["crash"]);
  EXPECT_EQ(one["sources"], want["sources"]);
  EXPECT_EQ(one["reason"], want["reason"]);
  EXPECT_EQ(one["before"], want["before"]);
  EXPECT_EQ(one["number"], 1);
  EXPECT_TRUE(one["state"].contains("status"));
}

TEST_F(ServeTest, HealthIsBucketedWithMinAndMax) {
  AppendHealthEvents(root_, "app", 100, kT0 + 10 * kSec);
  Server server({"--journal", root_, "--listen", "127.0.0.1:0"});
  httplib::Client client = server.Client();
  json got = Get(client, "/api/health?points=5");
  ASSERT_TRUE(got["series"].contains("app"));
  const json& buckets = got["series"]["app"];
  EXPECT_LE(buckets.size(), 5u);
  uint64_t samples = 0;
  for (const json& b : buckets) {
    samples += b[2].get<uint64_t>();
    EXPECT_LE(b[3].get<double>(), b[4].get<double>());
  }
  json all = Get(client, "/api/events?type=health&stream=app");
  EXPECT_EQ(samples, all["events"].size());
}

// /api/health keeps what it has read between requests; a sample journaled
// after one request is in the next, and a window counts only its own samples.
TEST_F(ServeTest, HealthFollowsNewSamplesAndKeepsToTheWindow) {
  AppendHealthEvents(root_, "app", 10, kT0 + 10 * kSec);
  Server server({"--journal", root_, "--listen", "127.0.0.1:0"});
  httplib::Client client = server.Client();
  auto samples = [&](const std::string& path) {
    json got = Get(client, path);
    uint64_t n = 0;
    for (const json& b : got["series"]["app"]) n += b[2].get<uint64_t>();
    return n;
  };
  const uint64_t before = samples("/api/health?points=1000");
  ASSERT_GT(before, 0u);
  AppendHealthEvents(root_, "app", 7, kT0 + 20 * kSec);
  EXPECT_EQ(samples("/api/health?points=1000"), before + 7);
  for (const std::string window : {"since=2026-01-15T10:30:20Z", "until=2026-01-15T10:30:19Z",
                                   "since=2026-01-15T10:30:10Z&until=2026-01-15T10:30:20.003Z"}) {
    const uint64_t want =
        Get(client, "/api/events?type=health&stream=app&" + window)["events"].size();
    EXPECT_GT(want, 0u) << window;
    EXPECT_EQ(samples("/api/health?points=3&" + window), want) << window;
  }
}

// Appends `payload` at `time_ns` to `stream` of `root`, as process `pid`.
template <class T>
void AppendEvent(const std::string& root, const std::string& stream, int64_t time_ns, int pid,
                 T payload) {
  auto journal = Journal::Open(root, stream);
  ASSERT_TRUE(journal.ok()) << journal.status().ToString();
  fb::EventT e;
  e.time_ns = time_ns;
  e.mono_ns = time_ns - kT0 + 1000 * kSec;
  e.pid = pid;
  e.severity = fb::Severity::Critical;
  e.payload.Set(std::move(payload));
  ASSERT_TRUE(journal.value()->Append(std::move(e), Durability::kDurable).ok());
}

fb::CrashT Crash(fb::CrashOrigin origin, int signal, int pid) {
  fb::CrashT c;
  c.origin = origin;
  c.signal = signal;
  c.crashed_pid = pid;
  return c;
}

// The server reads the journal once and then only what is appended; its
// answers must stay those of a fresh read (the commands run afresh), also
// when an event arrives with a time before events already read.
TEST_F(ServeTest, AnswersAfterAppendsAreThoseOfAFreshRead) {
  Server server({"--journal", root_, "--listen", "127.0.0.1:0"});
  httplib::Client client = server.Client();
  auto expect_fresh = [&](const std::string& when) {
    SCOPED_TRACE(when);
    ToolResult replay = RunTool({"replay", "--journal", root_, "--json"});
    ASSERT_EQ(replay.exit_code, 0) << replay.err;
    json events = json::array();
    for (const std::string& line : Lines(replay.out)) events.push_back(json::parse(line));
    EXPECT_EQ(Get(client, "/api/events")["events"], events);
    json newest = Get(client, "/api/events?type=crash,restart,lifecycle&limit=3");
    json want_newest = json::array();
    for (const json& e : events) {
      if (e["type"] == "crash" || e["type"] == "restart" || e["type"] == "lifecycle") {
        want_newest.push_back(e);
      }
    }
    want_newest.erase(want_newest.begin(), want_newest.end() - 3);
    EXPECT_EQ(newest["events"], want_newest);
    EXPECT_EQ(newest["truncated"], true);

    ToolResult crashes = RunTool({"crashes", "--journal", root_, "--json"});
    ASSERT_EQ(crashes.exit_code, 0) << crashes.err;
    json want_crashes = json::array();
    for (const std::string& line : Lines(crashes.out)) want_crashes.push_back(json::parse(line));
    EXPECT_EQ(Get(client, "/api/crashes")["crashes"], want_crashes);

    ToolResult state = RunTool({"state", "--journal", root_, "--json"});
    ASSERT_EQ(state.exit_code, 0) << state.err;
    json got_state = Get(client, "/api/state");
    got_state.erase("damaged");
    EXPECT_EQ(got_state, json::parse(state.out));
  };
  expect_fresh("the fixture");

  // In time order: the watchdog sees the second run die.
  AppendEvent(root_, "watchdog", kT0 + 60 * kSec, 100, Crash(fb::CrashOrigin::Watchdog, 6, 4300));
  expect_fresh("a crash appended");

  // Older than the watchdog's crash already read: an app crash and error
  // (the fold takes the last crash in time order, the watchdog's).
  AppendEvent(root_, "app", kT0 + 55 * kSec, 4300, Crash(fb::CrashOrigin::Signal, 6, 4300));
  expect_fresh("an older crash appended");
}

// With a snapshot in the journal the state is LoadState's (the newest
// snapshot, then the events after it), before and after an append: as
// `blackbox state` prints it.
TEST_F(ServeTest, StateStartsAtTheNewestSnapshotAsTheStateCommand) {
  {
    Result<SystemState> folded = LoadState(root_);
    ASSERT_TRUE(folded.ok()) << folded.status().ToString();
    // A count the events alone would not give: the answer must start from it.
    SystemState snapshot = folded.value();
    snapshot.event_count += 1000;
    auto app = Journal::Open(root_, "app");
    ASSERT_TRUE(app.ok()) << app.status().ToString();
    std::string bytes = EncodeSnapshot(snapshot);
    ASSERT_TRUE(
        app.value()
            ->PutSnapshot(app.value()->last_seq(),
                          std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()))
            .ok());
  }
  Server server({"--journal", root_, "--listen", "127.0.0.1:0"});
  httplib::Client client = server.Client();
  auto expect_state_command = [&](const std::string& when, int events) {
    SCOPED_TRACE(when);
    ToolResult state = RunTool({"state", "--journal", root_, "--json"});
    ASSERT_EQ(state.exit_code, 0) << state.err;
    json want = json::parse(state.out);
    EXPECT_EQ(want["event_count"], events + 1000);
    json got = Get(client, "/api/state");
    got.erase("damaged");
    EXPECT_EQ(got, want);
  };
  const int fixture = kFixtureAppEvents + kFixtureWatchdogEvents;
  expect_state_command("the snapshot", fixture);
  AppendEvent(root_, "watchdog", kT0 + 60 * kSec, 100, Crash(fb::CrashOrigin::Watchdog, 6, 4300));
  expect_state_command("an event after it", fixture + 1);
}

// A crash's state is `blackbox state --at` its time, also past the model's
// first checkpoint (every 16384 events folded).
TEST_F(ServeTest, CrashStateIsTheStateCommandAtItsTime) {
  AppendHealthEvents(root_, "watchdog", 20000, kT0 + 41 * kSec);
  AppendEvent(root_, "watchdog", kT0 + 70 * kSec, 100, Crash(fb::CrashOrigin::Watchdog, 6, 4300));
  Server server({"--journal", root_, "--listen", "127.0.0.1:0"});
  httplib::Client client = server.Client();
  json crashes = Get(client, "/api/crashes")["crashes"];
  ASSERT_EQ(crashes.size(), 2u);
  for (const json& c : crashes) {
    const std::string time = c["time"];
    SCOPED_TRACE(time);
    ToolResult state = RunTool({"state", "--journal", root_, "--json", "--at", time});
    ASSERT_EQ(state.exit_code, 0) << state.err;
    json got = Get(client, "/api/crashes/" + std::to_string(c["number"].get<int>()));
    EXPECT_EQ(got["state"], json::parse(state.out));
    EXPECT_EQ(got["damaged"], 0);
  }
}

TEST_F(ServeTest, BadParametersAre400WithAReason) {
  Server server({"--journal", root_, "--listen", "127.0.0.1:0"});
  httplib::Client client = server.Client();
  for (const char* path :
       {"/api/events?type=nosuch", "/api/events?since=banana", "/api/events?limit=-1",
        "/api/events?stream=nosuch", "/api/health?points=0", "/api/health?points=x",
        "/api/crashes/0", "/api/crashes/99", "/api/crashes/x", "/api/state?at=banana",
        "/api/events?since=2026-01-16T00:00:00Z&until=2026-01-15T00:00:00Z"}) {
    json body = Get(client, path, 400);
    EXPECT_TRUE(body["error"].is_string()) << path;
    EXPECT_EQ(body["error"].get<std::string>().find('\n'), std::string::npos) << path;
  }
}

TEST_F(ServeTest, RefusesANonLoopbackAddressWithoutAToken) {
  ToolResult r = RunTool({"serve", "--journal", root_, "--listen", "0.0.0.0:0"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--token-file"), std::string::npos) << r.err;
}

TEST_F(ServeTest, WithATokenFileARequestWithoutItIs401) {
  std::string token_file = dir_ / "token";
  WriteFile(token_file, "0123456789abcdef-secret\n");
  Server server({"--journal", root_, "--listen", "127.0.0.1:0", "--token-file", token_file});
  httplib::Client client = server.Client();
  Get(client, "/api/crashes", 401);
  Get(client, "/api/crashes?token=wrong-wrong-wrong-wrong", 401);
  httplib::Result page = client.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 401);

  httplib::Headers bearer = {{"Authorization", "Bearer 0123456789abcdef-secret"}};
  httplib::Result ok = client.Get("/api/crashes", bearer);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);

  httplib::Result once = client.Get("/?token=0123456789abcdef-secret");
  ASSERT_TRUE(once);
  EXPECT_EQ(once->status, 200);
  std::string cookie = once->get_header_value("Set-Cookie");
  EXPECT_NE(cookie.find("HttpOnly"), std::string::npos) << cookie;
  std::string pair = cookie.substr(0, cookie.find(';'));
  httplib::Result with_cookie = client.Get("/api/state", {{"Cookie", pair}});
  ASSERT_TRUE(with_cookie);
  EXPECT_EQ(with_cookie->status, 200);
}

}  // namespace
}  // namespace blackbox::tools::testing
