// Event -> JSON: the envelope, then the payload's fields as event_fields.h
// lists them, written straight from the journaled table (no unpacking).
#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <type_traits>
#include <vector>

#include "event_fields.h"
#include "event_json.h"
#include "json_writer.h"

namespace blackbox::tools {
namespace {

using StringVector = flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>;

// Writes one field of `table`, by the type its accessor returns.
template <class Table>
struct FieldWriter {
  ObjectWriter& w;
  const Table& table;

  template <class Getter, class Member>
  void operator()(std::string_view key, Getter getter, Member) const {
    const auto value = (table.*getter)();
    using T = std::remove_cv_t<decltype(value)>;
    if constexpr (std::is_same_v<T, const flatbuffers::String*>) {
      w.String(key, value);
    } else if constexpr (std::is_same_v<T, const StringVector*>) {
      w.Strings(key, value);
    } else if constexpr (std::is_same_v<T, bool>) {
      w.Bool(key, value);
    } else if constexpr (std::is_enum_v<T>) {
      w.Enum(key, value);
    } else if constexpr (std::is_floating_point_v<T>) {
      w.Double(key, value);
    } else if constexpr (std::is_signed_v<T>) {
      w.Int(key, value);
    } else {
      static_assert(std::is_unsigned_v<T>, "a field type event_to_json.cpp cannot write");
      w.UInt(key, value);
    }
  }
};

void AddConfigEntries(ObjectWriter& w, const fb::Config& p) {
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

template <class Table>
void AddPayload(ObjectWriter& w, const Table& table) {
  PayloadFields<Table>::Visit(FieldWriter<Table>{w, table});
  if constexpr (std::is_same_v<Table, fb::Config>) AddConfigEntries(w, table);
}

}  // namespace

void AppendEventJson(std::string& out, const fb::Event& e, std::string_view stream, uint64_t seq) {
  ObjectWriter w(out);
  w.UInt("seq", seq);
  w.String("stream", stream);
  w.Time("time", e.time_ns());
  w.String("type", PayloadName(e.payload_type()));
  w.Enum("severity", e.severity());
  w.Int("pid", e.pid());
  w.Int("mono_ns", e.mono_ns());
  // A union whose type is set but whose table is absent passes the verifier;
  // such an event is shown with its envelope only.
  const bool known = PayloadTables::With(e.payload_type(), [&](const auto* tag) {
    using Table = std::remove_cv_t<std::remove_pointer_t<decltype(tag)>>;
    if (const auto* p = e.payload_as<Table>()) AddPayload(w, *p);
  });
  if (!known) w.Int("type_id", static_cast<int>(e.payload_type()));
}

std::string EventToJsonLine(const fb::Event& event, std::string_view stream, uint64_t seq) {
  std::string out;
  AppendEventJson(out, event, stream, seq);
  return out;
}

Json EventToJson(const fb::Event& event, std::string_view stream, uint64_t seq) {
  return Json::parse(EventToJsonLine(event, stream, seq));
}

}  // namespace blackbox::tools
