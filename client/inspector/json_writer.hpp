// A minimal streaming JSON writer for the inspector's --json output.
//
// Hand-written because none of the installed libraries writes JSON (simdjson 3.0 only parses, Boost
// 1.74 predates Boost.JSON) and the inspector must stay a small, dependency-light program.
// It writes compact JSON; strings are escaped per RFC 8259, non-finite doubles become null.
#pragma once

#include <fmt/format.h>

#include <cmath>
#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mdshm::inspect {

class JsonWriter {
 public:
  JsonWriter& begin_object() { return open_('{'); }
  JsonWriter& end_object() { return close_('}'); }
  JsonWriter& begin_array() { return open_('['); }
  JsonWriter& end_array() { return close_(']'); }

  JsonWriter& key(std::string_view k) {
    separate_();
    quote_(k);
    out_ += ':';
    after_key_ = true;
    return *this;
  }

  JsonWriter& value(std::string_view s) {
    separate_();
    quote_(s);
    return *this;
  }
  JsonWriter& value(const char* s) { return value(std::string_view(s)); }
  JsonWriter& value(const std::string& s) { return value(std::string_view(s)); }
  JsonWriter& value(bool b) {
    separate_();
    out_ += b ? "true" : "false";
    return *this;
  }
  template <std::integral T>
    requires(!std::same_as<T, bool>)
  JsonWriter& value(T v) {
    separate_();
    fmt::format_to(std::back_inserter(out_), "{}", v);
    return *this;
  }
  JsonWriter& value(double d) {
    separate_();
    if (std::isfinite(d)) fmt::format_to(std::back_inserter(out_), "{}", d);  // shortest round-trip
    else out_ += "null";
    return *this;
  }
  JsonWriter& null() {
    separate_();
    out_ += "null";
    return *this;
  }

  template <class T>
  JsonWriter& field(std::string_view k, const T& v) {
    key(k);
    return value(v);
  }

  const std::string& str() const { return out_; }

 private:
  JsonWriter& open_(char c) {
    separate_();
    out_ += c;
    first_.push_back(true);
    return *this;
  }
  JsonWriter& close_(char c) {
    out_ += c;
    if (!first_.empty()) first_.pop_back();
    return *this;
  }
  void separate_() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (!first_.empty()) {
      if (!first_.back()) out_ += ',';
      first_.back() = false;
    }
  }
  void quote_(std::string_view s) {
    out_ += '"';
    for (const char ch : s) {
      const auto c = static_cast<unsigned char>(ch);
      switch (c) {
        case '"': out_ += "\\\""; break;
        case '\\': out_ += "\\\\"; break;
        case '\n': out_ += "\\n"; break;
        case '\r': out_ += "\\r"; break;
        case '\t': out_ += "\\t"; break;
        default:
          if (c < 0x20 || c >= 0x7f) fmt::format_to(std::back_inserter(out_), "\\u{:04x}", c);  // bytes from a garbage file stay ASCII
          else out_ += ch;
      }
    }
    out_ += '"';
  }

  std::string out_;
  std::vector<bool> first_;
  bool after_key_ = false;
};

}  // namespace mdshm::inspect
