// Checks for numeric options, with messages a person can act on
// ("--lines: must be a whole number ≥ 0, not '-5'") instead of CLI11's
// defaults, which print the type's whole range. CLI11 runs a check before it
// converts the text, so a value that passes always converts.
#pragma once

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string>

namespace blackbox::tools {

// 0, 1, 2, … (no sign, no fraction), and small enough for `Max`.
inline CLI::Validator WholeNumber(unsigned long long max = 18446744073709551615ull) {
  return CLI::Validator(
      [max](std::string& text) -> std::string {
        bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
        errno = 0;
        unsigned long long v = digits ? std::strtoull(text.c_str(), nullptr, 10) : 0;
        if (!digits || errno == ERANGE || v > max) {
          return "must be a whole number ≥ 0, not '" + text + "'";
        }
        return {};
      },
      "N≥0", "WholeNumber");
}

// A whole number, negative too (-1 = the last).
inline CLI::Validator Integer() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        std::string body = !text.empty() && text[0] == '-' ? text.substr(1) : text;
        bool digits = !body.empty() && body.size() < 19 &&
                      body.find_first_not_of("0123456789") == std::string::npos;
        if (!digits)
          return "must be a whole number (negative counts from the end), not '" + text + "'";
        return {};
      },
      "N", "Integer");
}

// A finite number ≥ 0, fractions allowed (1.5 days).
inline CLI::Validator NonNegativeNumber() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        char* end = nullptr;
        errno = 0;
        double v = text.empty() ? -1 : std::strtod(text.c_str(), &end);
        if (text.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(v) || v < 0) {
          return "must be a number ≥ 0, not '" + text + "'";
        }
        return {};
      },
      "X≥0", "NonNegativeNumber");
}

}  // namespace blackbox::tools
