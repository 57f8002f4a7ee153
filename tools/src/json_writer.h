// A JSON object writer for the fast path of export and replay (see
// event_to_json.cpp), and the small text helpers both directions share.
//
// Export and replay write millions of events, so the text is produced in one
// pass instead of building a JSON tree per event: an ObjectWriter gathers the
// small pieces (keys, numbers, punctuation, short plain strings) in a buffer
// on the stack and appends them to the output in large copies. Every string
// (value or key) goes through the JSON library, except strings made only of
// printable ASCII other than '"' and '\\', which need no escaping and are
// copied as they are. Floating-point numbers are written in their shortest
// round-trip form. EventToJson parses this text, so the two never disagree.

#pragma once

#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "event_fields.h"
#include "event_json.h"
#include "time_spec.h"

namespace blackbox::tools {

inline std::string_view Str(const flatbuffers::String* s) { return s ? s->string_view() : ""; }

inline bool NeedsNoEscaping(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7e || c == '"' || c == '\\') return false;
  }
  return true;
}

// Any string, escaped by the JSON library. Invalid UTF-8 (a message cut
// mid-character) becomes U+FFFD instead of an error.
inline void AppendEscaped(std::string& out, std::string_view s) {
  out += Json(s).dump(-1, ' ', false, Json::error_handler_t::replace);
}

inline std::string Lower(std::string_view s) {
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
  template <class E>
  void Enum(std::string_view key, E value) {
    static const std::vector<std::string> lower = [] {
      const EnumTable<E> table = EnumTableOf(E{});
      std::vector<std::string> v;
      for (size_t i = 0; i < table.values.size(); ++i) v.push_back(Lower(table.names[i]));
      return v;
    }();
    const EnumTable<E> table = EnumTableOf(E{});
    auto i = static_cast<size_t>(value);
    if (i < table.values.size() && table.values[i] == value) {
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

}  // namespace blackbox::tools
