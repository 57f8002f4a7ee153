// JSON -> event: the envelope, then the payload's fields as event_fields.h
// lists them, set on the object API's struct. A missing field keeps the
// schema's default; a present field of the wrong type is an error.
#include <fmt/format.h>

#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "event_fields.h"
#include "event_json.h"
#include "json_writer.h"
#include "time_spec.h"

namespace blackbox::tools {
namespace {

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
  template <class E>
  E Enum(const char* key) const {
    const auto* v = Find(key);
    if (!v) return E{};
    if (v->is_number_integer()) {
      return static_cast<E>(Integer<std::underlying_type_t<E>>(key));
    }
    if (v->is_string()) {
      const EnumTable<E> table = EnumTableOf(E{});
      std::string name = Lower(v->get<std::string>());
      for (size_t i = 0; i < table.values.size(); ++i) {
        if (Lower(table.names[i]) == name) return table.values[i];
      }
      throw FieldError(
          fmt::format("unknown value '{}' for field '{}'", v->get<std::string>(), key));
    }
    throw FieldError(fmt::format("field '{}' must be a name or a number", key));
  }

 private:
  const Json& j_;
};

// Sets one member of `object` from its key, by the member's type; a key that
// is absent leaves the member as it is (the schema's default).
template <class Object>
struct FieldReader {
  const Fields& f;
  Object& object;

  template <class Getter, class T>
  void operator()(const char* key, Getter, T Object::*member) const {
    if (f.Find(key) == nullptr) return;
    T& m = object.*member;
    if constexpr (std::is_same_v<T, std::string>) {
      m = f.String(key);
    } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      m = f.Strings(key);
    } else if constexpr (std::is_same_v<T, bool>) {
      m = f.Bool(key);
    } else if constexpr (std::is_enum_v<T>) {
      m = f.Enum<T>(key);
    } else if constexpr (std::is_floating_point_v<T>) {
      m = f.Double(key);
    } else {
      static_assert(std::is_integral_v<T>, "a field type json_to_event.cpp cannot read");
      m = f.Integer<T>(key);
    }
  }
};

void ReadConfigEntries(const Fields& f, fb::ConfigT& p) {
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
}

template <class Table>
typename Table::NativeTableType ReadPayload(const Fields& f) {
  typename Table::NativeTableType p;
  PayloadFields<Table>::Visit(FieldReader<typename Table::NativeTableType>{f, p});
  if constexpr (std::is_same_v<Table, fb::Config>) ReadConfigEntries(f, p);
  return p;
}

}  // namespace

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
    if (f.Find("severity")) e.severity = f.Enum<fb::Severity>("severity");

    std::string type = f.String("type");
    const bool known = PayloadTables::With(PayloadFromName(type), [&](const auto* tag) {
      using Table = std::remove_cv_t<std::remove_pointer_t<decltype(tag)>>;
      e.payload.Set(ReadPayload<Table>(f));
    });
    if (!known) throw FieldError(fmt::format("unknown event type '{}'", type));
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
