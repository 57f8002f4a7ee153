#include "event_json.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <stdexcept>
#include <utility>

#include "time_spec.h"

namespace blackbox::tools {
namespace {

// ---------------------------------------------------------------------------
// Event -> JSON
//
// Export and replay write millions of events, so the text is produced in one
// pass instead of building a JSON tree per event: an ObjectWriter gathers the
// small pieces (keys, numbers, punctuation, short plain strings) in a buffer
// on the stack and appends them to the output in large copies. Every string
// (value or key) goes through the JSON library, except strings made only of
// printable ASCII other than '"' and '\\', which need no escaping and are
// copied as they are. Floating-point numbers are written in their shortest
// round-trip form. EventToJson parses this text, so the two never disagree.

std::string_view Str(const flatbuffers::String* s) { return s ? s->string_view() : ""; }

bool NeedsNoEscaping(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7e || c == '"' || c == '\\') return false;
  }
  return true;
}

// Any string, escaped by the JSON library. Invalid UTF-8 (a message cut
// mid-character) becomes U+FFFD instead of an error.
void AppendEscaped(std::string& out, std::string_view s) {
  out += Json(s).dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Writes the members of one JSON object, in the order they are given.
class ObjectWriter {
 public:
  explicit ObjectWriter(std::string& out) : out_(out) { Put('{'); }
  ~ObjectWriter() {
    Put('}');
    Flush();
  }
  ObjectWriter(const ObjectWriter&) = delete;
  ObjectWriter& operator=(const ObjectWriter&) = delete;

  void Int(std::string_view key, int64_t v) {
    Key(key);
    fmt::format_int digits(v);
    Put({digits.data(), digits.size()});
  }
  void UInt(std::string_view key, uint64_t v) {
    Key(key);
    fmt::format_int digits(v);
    Put({digits.data(), digits.size()});
  }
  // The shortest text that reads back as the same double. Integral values
  // keep a ".0" so that the field reads as a floating-point number; JSON has
  // no NaN or infinity, so those are null (as the JSON library writes them).
  void Double(std::string_view key, double v) {
    Key(key);
    if (!std::isfinite(v)) {
      Put("null");
      return;
    }
    char buf[40];
    char* end = fmt::format_to(buf, "{}", v);
    std::string_view text(buf, static_cast<size_t>(end - buf));
    Put(text);
    if (text.find_first_of(".e") == std::string_view::npos) Put(".0");
  }
  void Bool(std::string_view key, bool v) {
    Key(key);
    Put(v ? std::string_view("true") : std::string_view("false"));
  }
  void String(std::string_view key, std::string_view v) {
    Key(key);
    Value(v);
  }
  // A text field of the event: null when absent or empty, as in every JSON
  // the tool writes (state --json too), so "no value" has one spelling.
  void String(std::string_view key, const flatbuffers::String* v) {
    if (v == nullptr || v->size() == 0) {
      Key(key);
      Put("null");
    } else {
      String(key, Str(v));
    }
  }
  void Strings(std::string_view key,
               const flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>* v) {
    Key(key);
    Put('[');
    if (v) {
      for (flatbuffers::uoffset_t i = 0; i < v->size(); ++i) {
        if (i > 0) Put(',');
        Value(Str(v->Get(i)));
      }
    }
    Put(']');
  }
  // Lower-case enum names, computed once per enum type. A value past the end
  // of the table (written by a newer build) becomes its number.
  template <class E, size_t N>
  void Enum(std::string_view key, E value, const E (&values)[N], const char* const* names) {
    static const std::vector<std::string> lower = [&] {
      std::vector<std::string> v;
      for (size_t i = 0; i < N; ++i) v.push_back(Lower(names[i]));
      return v;
    }();
    auto i = static_cast<size_t>(value);
    if (i < N && values[i] == value) {
      String(key, lower[i]);
    } else {
      Int(key, static_cast<int64_t>(value));
    }
  }
  void Time(std::string_view key, int64_t ns) {
    Key(key);
    if (kStage - n_ < kMaxQuotedUtc) Flush();
    n_ = static_cast<size_t>(QuotedUtcTo(stage_ + n_, ns) - stage_);
  }
  // Writes `key`; the caller appends the value's JSON text (for example an
  // object, through a nested ObjectWriter) to the returned buffer.
  std::string& Raw(std::string_view key) {
    Key(key);
    Flush();
    return out_;
  }

 private:
  static constexpr size_t kStage = 512;

  void Put(char c) {
    if (n_ == kStage) Flush();
    stage_[n_++] = c;
  }
  void Put(std::string_view s) {
    if (s.size() > kStage - n_) {
      Flush();
      if (s.size() > kStage) {
        out_.append(s);
        return;
      }
    }
    std::memcpy(stage_ + n_, s.data(), s.size());
    n_ += s.size();
  }
  void Flush() {
    out_.append(stage_, n_);
    n_ = 0;
  }
  void Value(std::string_view v) {
    if (NeedsNoEscaping(v)) {
      Put('"');
      Put(v);
      Put('"');
    } else {
      Flush();
      AppendEscaped(out_, v);
    }
  }
  void Key(std::string_view key) {
    if (!first_) Put(',');
    first_ = false;
    Value(key);
    Put(':');
  }

  std::string& out_;
  bool first_ = true;
  size_t n_ = 0;
  char stage_[kStage];
};

#define BLACKBOX_ENUM(w, key, Type, v) w.Enum(key, v, fb::EnumValues##Type(), fb::EnumNames##Type())

void AddError(ObjectWriter& w, const fb::Error& p) {
  w.String("context", p.context());
  w.String("exception_type", p.exception_type());
  w.String("message", p.message());
  w.Strings("frames", p.frames());
  w.Int("recovery_attempt", p.recovery_attempt());
}

void AddCrash(ObjectWriter& w, const fb::Crash& p) {
  BLACKBOX_ENUM(w, "origin", CrashOrigin, p.origin());
  w.Int("signal", p.signal());
  w.String("signal_name", p.signal_name());
  w.UInt("fault_address", p.fault_address());
  w.Strings("frames", p.frames());
  w.String("exception_type", p.exception_type());
  w.String("exception_message", p.exception_message());
  w.Int("crashed_pid", p.crashed_pid());
  w.Int("exit_code", p.exit_code());
  w.Bool("core_dumped", p.core_dumped());
  w.Int("crash_time_ns", p.crash_time_ns());
}

void AddHealth(ObjectWriter& w, const fb::Health& p) {
  w.UInt("rss_bytes", p.rss_bytes());
  w.Double("cpu_percent", p.cpu_percent());
  w.Double("memory_percent", p.memory_percent());
  w.Double("disk_percent", p.disk_percent());
  w.Int("threads", p.threads());
  w.Int("open_fds", p.open_fds());
  w.Int("sampled_pid", p.sampled_pid());
  w.Bool("over_threshold", p.over_threshold());
}

void AddLifecycle(ObjectWriter& w, const fb::Lifecycle& p) {
  BLACKBOX_ENUM(w, "phase", Phase, p.phase());
  w.String("reason", p.reason());
  w.Int("child_pid", p.child_pid());
  w.Int("exit_code", p.exit_code());
  w.Int("signal", p.signal());
  w.Bool("core_dumped", p.core_dumped());
}

void AddRestart(ObjectWriter& w, const fb::Restart& p) {
  w.Int("attempt", p.attempt());
  BLACKBOX_ENUM(w, "reason", RestartReason, p.reason());
  w.Int("exit_code", p.exit_code());
  w.Int("signal", p.signal());
  w.Int("delay_ms", p.delay_ms());
  w.Int("child_pid", p.child_pid());
}

void AddCallback(ObjectWriter& w, const fb::Callback& p) {
  BLACKBOX_ENUM(w, "kind", CallbackKind, p.kind());
  w.String("name", p.name());
  w.Bool("ok", p.ok());
  w.String("error", p.error());
  w.Int("duration_us", p.duration_us());
}

void AddGauge(ObjectWriter& w, const fb::Gauge& p) {
  w.String("name", p.name());
  w.Double("value", p.value());
}

void AddLogLine(ObjectWriter& w, const fb::LogLine& p) {
  w.String("source", p.source());
  w.String("pattern", p.pattern());
  w.String("text", p.text());
  w.UInt("suppressed", p.suppressed());
  w.UInt("dropped_bytes", p.dropped_bytes());
}

void AddLimit(ObjectWriter& w, const fb::Limit& p) {
  BLACKBOX_ENUM(w, "kind", LimitKind, p.kind());
  w.Double("value", p.value());
  w.Double("limit", p.limit());
  w.Int("consecutive", p.consecutive());
  BLACKBOX_ENUM(w, "action", LimitAction, p.action());
  w.Int("child_pid", p.child_pid());
}

void AddConfig(ObjectWriter& w, const fb::Config& p) {
  w.String("component", p.component());
  ObjectWriter entries(w.Raw("entries"));
  if (!p.entries()) return;
  // A JSON object holds each key once: for a key repeated in the event, the
  // last value wins (what a reader of the config would see), at the place of
  // its first appearance. Keys are compared as they are written: two keys
  // that differ only in invalid UTF-8 both become the same text with U+FFFD.
  struct Entry {
    std::string written;
    std::string_view key;
    const flatbuffers::String* value;
  };
  std::vector<Entry> unique;
  for (const auto* e : *p.entries()) {
    if (e == nullptr) continue;
    std::string_view key = Str(e->key());
    std::string written;
    if (NeedsNoEscaping(key)) {
      written.append(1, '"').append(key).append(1, '"');
    } else {
      AppendEscaped(written, key);
    }
    auto it = std::find_if(unique.begin(), unique.end(),
                           [&](const Entry& u) { return u.written == written; });
    if (it != unique.end()) {
      it->value = e->value();
    } else {
      unique.push_back({std::move(written), key, e->value()});
    }
  }
  for (const Entry& u : unique) entries.String(u.key, u.value);
}

// ---------------------------------------------------------------------------
// JSON -> EventT

// Thrown inside JsonToEvent only; becomes its `why`.
struct FieldError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Typed access to the fields of one object. A missing field takes the
// schema's default; a present field of the wrong type is an error.
class Fields {
 public:
  explicit Fields(const Json& j) : j_(j) {}

  const Json* Find(const char* key) const {
    auto it = j_.find(key);
    return it == j_.end() ? nullptr : &*it;
  }
  std::string String(const char* key) const {
    const auto* v = Find(key);
    if (!v || v->is_null()) return {};
    if (!v->is_string()) throw FieldError(fmt::format("field '{}' must be a string", key));
    return v->get<std::string>();
  }
  template <class T>
  T Integer(const char* key, T fallback = 0) const {
    const auto* v = Find(key);
    if (!v) return fallback;
    if (!v->is_number_integer()) {
      throw FieldError(fmt::format("field '{}' must be an integer", key));
    }
    bool fits = v->is_number_unsigned() ? std::in_range<T>(v->get<uint64_t>())
                                        : std::in_range<T>(v->get<int64_t>());
    if (!fits) throw FieldError(fmt::format("field '{}' is out of range", key));
    return v->is_number_unsigned() ? static_cast<T>(v->get<uint64_t>())
                                   : static_cast<T>(v->get<int64_t>());
  }
  double Double(const char* key) const {
    const auto* v = Find(key);
    if (!v) return 0;
    // JSON has no NaN or infinity; the library writes them as null.
    if (v->is_null()) return std::numeric_limits<double>::quiet_NaN();
    if (!v->is_number()) throw FieldError(fmt::format("field '{}' must be a number", key));
    return v->get<double>();
  }
  bool Bool(const char* key) const {
    const auto* v = Find(key);
    if (!v) return false;
    if (!v->is_boolean()) throw FieldError(fmt::format("field '{}' must be true or false", key));
    return v->get<bool>();
  }
  std::vector<std::string> Strings(const char* key) const {
    std::vector<std::string> out;
    const auto* v = Find(key);
    if (!v || v->is_null()) return out;
    if (!v->is_array()) throw FieldError(fmt::format("field '{}' must be an array", key));
    for (const auto& s : *v) {
      if (!s.is_string()) throw FieldError(fmt::format("field '{}' must hold strings", key));
      out.push_back(s.get<std::string>());
    }
    return out;
  }
  // A lower-case name (any case accepted) or the number of the value.
  template <class E, size_t N>
  E Enum(const char* key, const E (&values)[N], const char* const* names) const {
    const auto* v = Find(key);
    if (!v) return values[0];
    if (v->is_number_integer()) {
      return static_cast<E>(Integer<std::underlying_type_t<E>>(key));
    }
    if (v->is_string()) {
      std::string name = Lower(v->get<std::string>());
      for (size_t i = 0; i < N; ++i) {
        if (Lower(names[i]) == name) return values[i];
      }
      throw FieldError(
          fmt::format("unknown value '{}' for field '{}'", v->get<std::string>(), key));
    }
    throw FieldError(fmt::format("field '{}' must be a name or a number", key));
  }

 private:
  const Json& j_;
};

#define BLACKBOX_ENUM_FIELD(f, key, Type) f.Enum(key, fb::EnumValues##Type(), fb::EnumNames##Type())

fb::ErrorT ErrorFrom(const Fields& f) {
  fb::ErrorT p;
  p.context = f.String("context");
  p.exception_type = f.String("exception_type");
  p.message = f.String("message");
  p.frames = f.Strings("frames");
  p.recovery_attempt = f.Integer<int32_t>("recovery_attempt");
  return p;
}

fb::CrashT CrashFrom(const Fields& f) {
  fb::CrashT p;
  p.origin = BLACKBOX_ENUM_FIELD(f, "origin", CrashOrigin);
  p.signal = f.Integer<int32_t>("signal");
  p.signal_name = f.String("signal_name");
  p.fault_address = f.Integer<uint64_t>("fault_address");
  p.frames = f.Strings("frames");
  p.exception_type = f.String("exception_type");
  p.exception_message = f.String("exception_message");
  p.crashed_pid = f.Integer<int32_t>("crashed_pid");
  p.exit_code = f.Integer<int32_t>("exit_code", -1);
  p.core_dumped = f.Bool("core_dumped");
  p.crash_time_ns = f.Integer<int64_t>("crash_time_ns");
  return p;
}

fb::HealthT HealthFrom(const Fields& f) {
  fb::HealthT p;
  p.rss_bytes = f.Integer<uint64_t>("rss_bytes");
  p.cpu_percent = f.Double("cpu_percent");
  p.memory_percent = f.Double("memory_percent");
  p.disk_percent = f.Double("disk_percent");
  p.threads = f.Integer<int32_t>("threads");
  p.open_fds = f.Integer<int32_t>("open_fds");
  p.sampled_pid = f.Integer<int32_t>("sampled_pid");
  p.over_threshold = f.Bool("over_threshold");
  return p;
}

fb::LifecycleT LifecycleFrom(const Fields& f) {
  fb::LifecycleT p;
  p.phase = BLACKBOX_ENUM_FIELD(f, "phase", Phase);
  p.reason = f.String("reason");
  p.child_pid = f.Integer<int32_t>("child_pid");
  p.exit_code = f.Integer<int32_t>("exit_code", -1);
  p.signal = f.Integer<int32_t>("signal");
  p.core_dumped = f.Bool("core_dumped");
  return p;
}

fb::RestartT RestartFrom(const Fields& f) {
  fb::RestartT p;
  p.attempt = f.Integer<int32_t>("attempt");
  p.reason = BLACKBOX_ENUM_FIELD(f, "reason", RestartReason);
  p.exit_code = f.Integer<int32_t>("exit_code", -1);
  p.signal = f.Integer<int32_t>("signal");
  p.delay_ms = f.Integer<int64_t>("delay_ms");
  p.child_pid = f.Integer<int32_t>("child_pid");
  return p;
}

fb::CallbackT CallbackFrom(const Fields& f) {
  fb::CallbackT p;
  p.kind = BLACKBOX_ENUM_FIELD(f, "kind", CallbackKind);
  p.name = f.String("name");
  p.ok = f.Bool("ok");
  p.error = f.String("error");
  p.duration_us = f.Integer<int64_t>("duration_us");
  return p;
}

fb::GaugeT GaugeFrom(const Fields& f) {
  fb::GaugeT p;
  p.name = f.String("name");
  p.value = f.Double("value");
  return p;
}

fb::LogLineT LogLineFrom(const Fields& f) {
  fb::LogLineT p;
  p.source = f.String("source");
  p.pattern = f.String("pattern");
  p.text = f.String("text");
  p.suppressed = f.Integer<uint32_t>("suppressed");
  p.dropped_bytes = f.Integer<uint64_t>("dropped_bytes");
  return p;
}

fb::LimitT LimitFrom(const Fields& f) {
  fb::LimitT p;
  p.kind = BLACKBOX_ENUM_FIELD(f, "kind", LimitKind);
  p.value = f.Double("value");
  p.limit = f.Double("limit");
  p.consecutive = f.Integer<int32_t>("consecutive");
  p.action = BLACKBOX_ENUM_FIELD(f, "action", LimitAction);
  p.child_pid = f.Integer<int32_t>("child_pid");
  return p;
}

fb::ConfigT ConfigFrom(const Fields& f) {
  fb::ConfigT p;
  p.component = f.String("component");
  if (const auto* entries = f.Find("entries"); entries && !entries->is_null()) {
    if (!entries->is_object()) throw FieldError("field 'entries' must be an object");
    for (const auto& [key, value] : entries->items()) {
      // null is how the writer spells a value that is absent or empty.
      if (!value.is_string() && !value.is_null()) {
        throw FieldError("field 'entries' must map names to strings or null");
      }
      auto e = std::make_unique<fb::ConfigEntryT>();
      e->key = key;
      if (value.is_string()) e->value = value.get<std::string>();
      p.entries.push_back(std::move(e));
    }
  }
  return p;
}

}  // namespace

void AppendEventJson(std::string& out, const fb::Event& e, std::string_view stream, uint64_t seq) {
  ObjectWriter w(out);
  w.UInt("seq", seq);
  w.String("stream", stream);
  w.Time("time", e.time_ns());
  w.String("type", PayloadName(e.payload_type()));
  BLACKBOX_ENUM(w, "severity", Severity, e.severity());
  w.Int("pid", e.pid());
  w.Int("mono_ns", e.mono_ns());
  // A union whose type is set but whose table is absent passes the verifier;
  // such an event is shown with its envelope only.
  switch (e.payload_type()) {
    case fb::Payload::Error:
      if (auto* p = e.payload_as_Error()) AddError(w, *p);
      break;
    case fb::Payload::Crash:
      if (auto* p = e.payload_as_Crash()) AddCrash(w, *p);
      break;
    case fb::Payload::Health:
      if (auto* p = e.payload_as_Health()) AddHealth(w, *p);
      break;
    case fb::Payload::Lifecycle:
      if (auto* p = e.payload_as_Lifecycle()) AddLifecycle(w, *p);
      break;
    case fb::Payload::Restart:
      if (auto* p = e.payload_as_Restart()) AddRestart(w, *p);
      break;
    case fb::Payload::Callback:
      if (auto* p = e.payload_as_Callback()) AddCallback(w, *p);
      break;
    case fb::Payload::Gauge:
      if (auto* p = e.payload_as_Gauge()) AddGauge(w, *p);
      break;
    case fb::Payload::LogLine:
      if (auto* p = e.payload_as_LogLine()) AddLogLine(w, *p);
      break;
    case fb::Payload::Limit:
      if (auto* p = e.payload_as_Limit()) AddLimit(w, *p);
      break;
    case fb::Payload::Config:
      if (auto* p = e.payload_as_Config()) AddConfig(w, *p);
      break;
    default:
      w.Int("type_id", static_cast<int>(e.payload_type()));
      break;
  }
}

std::string EventToJsonLine(const fb::Event& event, std::string_view stream, uint64_t seq) {
  std::string out;
  AppendEventJson(out, event, stream, seq);
  return out;
}

Json EventToJson(const fb::Event& event, std::string_view stream, uint64_t seq) {
  return Json::parse(EventToJsonLine(event, stream, seq));
}

bool JsonToEvent(const Json& j, ParsedEvent* out, std::string* why) {
  try {
    if (!j.is_object()) throw FieldError("an event must be a JSON object");
    Fields f(j);
    const auto* seq = f.Find("seq");
    if (!seq || !seq->is_number_unsigned()) {
      throw FieldError("field 'seq' must be a positive integer");
    }
    out->seq = seq->get<uint64_t>();
    out->stream = f.String("stream");
    if (out->stream.empty()) throw FieldError("field 'stream' is missing");

    std::string time = f.String("time");
    auto time_ns = ParseAbsoluteTime(time);
    if (!time_ns) throw FieldError(fmt::format("field 'time' is not an RFC 3339 time: '{}'", time));

    fb::EventT& e = out->event;
    e = fb::EventT();
    e.time_ns = *time_ns;
    e.mono_ns = f.Integer<int64_t>("mono_ns");
    e.pid = f.Integer<int32_t>("pid");
    e.stream = out->stream;
    e.severity =
        f.Find("severity") ? BLACKBOX_ENUM_FIELD(f, "severity", Severity) : fb::Severity::Info;

    std::string type = f.String("type");
    switch (PayloadFromName(type)) {
      case fb::Payload::Error:
        e.payload.Set(ErrorFrom(f));
        break;
      case fb::Payload::Crash:
        e.payload.Set(CrashFrom(f));
        break;
      case fb::Payload::Health:
        e.payload.Set(HealthFrom(f));
        break;
      case fb::Payload::Lifecycle:
        e.payload.Set(LifecycleFrom(f));
        break;
      case fb::Payload::Restart:
        e.payload.Set(RestartFrom(f));
        break;
      case fb::Payload::Callback:
        e.payload.Set(CallbackFrom(f));
        break;
      case fb::Payload::Gauge:
        e.payload.Set(GaugeFrom(f));
        break;
      case fb::Payload::LogLine:
        e.payload.Set(LogLineFrom(f));
        break;
      case fb::Payload::Limit:
        e.payload.Set(LimitFrom(f));
        break;
      case fb::Payload::Config:
        e.payload.Set(ConfigFrom(f));
        break;
      default:
        throw FieldError(fmt::format("unknown event type '{}'", type));
    }
    return true;
  } catch (const FieldError& err) {
    *why = err.what();
  } catch (const Json::exception& err) {
    *why = err.what();
  }
  return false;
}

void PackEvent(const fb::EventT& event, flatbuffers::FlatBufferBuilder& fbb) {
  fbb.Clear();
  fb::FinishEventBuffer(fbb, fb::Event::Pack(fbb, &event));
}

}  // namespace blackbox::tools
