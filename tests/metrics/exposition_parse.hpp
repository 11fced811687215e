// A minimal reader of the Prometheus text format (0.0.4), strict enough to catch what would make
// a scrape fail: malformed sample lines, bad label quoting, families announced twice or not at all.
#pragma once

#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace mdshm::test {

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;  // unescaped values
  std::string value;
};

struct Exposition {
  std::vector<Sample> samples;
  std::map<std::string, std::string> types;  // family -> type
  std::map<std::string, int> help_count, type_count;
  std::vector<std::string> errors;

  // Samples of `name` whose labels include all of `match`.
  std::vector<const Sample*> find(const std::string& name, const std::map<std::string, std::string>& match = {}) const {
    std::vector<const Sample*> out;
    for (const auto& s : samples) {
      if (s.name != name) continue;
      bool ok = true;
      for (const auto& [k, v] : match) {
        auto it = s.labels.find(k);
        ok = ok && it != s.labels.end() && it->second == v;
      }
      if (ok) out.push_back(&s);
    }
    return out;
  }
  std::optional<double> value(const std::string& name, const std::map<std::string, std::string>& match) const {
    auto f = find(name, match);
    if (f.size() != 1) return std::nullopt;
    return std::stod(f[0]->value);
  }
};

inline bool metric_name_char(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || (!first && c >= '0' && c <= '9');
}

// The family a sample belongs to: histogram samples carry _bucket/_sum/_count suffixes.
inline std::string family_of(const std::string& name, const std::map<std::string, std::string>& types) {
  if (types.count(name)) return name;
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string s = suffix;
    if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
      const auto base = name.substr(0, name.size() - s.size());
      if (types.count(base) && types.at(base) == "histogram") return base;
    }
  }
  return {};
}

inline Exposition parse_exposition(const std::string& text) {
  Exposition x;
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    auto err = [&](const std::string& m) { x.errors.push_back("line " + std::to_string(n) + ": " + m + ": " + line); };
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream ls(line);
      std::string hash, kind, name, rest;
      ls >> hash >> kind >> name;
      std::getline(ls, rest);
      if (kind == "HELP") ++x.help_count[name];
      else if (kind == "TYPE") {
        ++x.type_count[name];
        x.types[name] = rest.empty() ? "" : rest.substr(1);
      }
      continue;
    }
    Sample s;
    std::size_t i = 0;
    while (i < line.size() && metric_name_char(line[i], i == 0)) ++i;
    s.name = line.substr(0, i);
    if (s.name.empty()) { err("no metric name"); continue; }
    if (i < line.size() && line[i] == '{') {
      ++i;
      bool ok = true;
      while (ok && i < line.size() && line[i] != '}') {
        std::size_t k = i;
        while (k < line.size() && metric_name_char(line[k], k == i)) ++k;
        const std::string key = line.substr(i, k - i);
        if (key.empty() || k + 1 >= line.size() || line[k] != '=' || line[k + 1] != '"') { ok = false; break; }
        i = k + 2;
        std::string value;
        while (i < line.size() && line[i] != '"') {
          if (line[i] == '\\') {
            if (i + 1 >= line.size()) { ok = false; break; }
            const char e = line[i + 1];
            if (e == 'n') value += '\n';
            else if (e == '\\' || e == '"') value += e;
            else { ok = false; break; }
            i += 2;
          } else {
            value += line[i++];
          }
        }
        if (!ok || i >= line.size()) { ok = false; break; }
        ++i;  // closing quote
        if (s.labels.count(key)) { ok = false; break; }
        s.labels[key] = value;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (!ok || i >= line.size()) { err("bad labels"); continue; }
      ++i;  // '}'
    }
    if (i >= line.size() || line[i] != ' ') { err("no value"); continue; }
    s.value = line.substr(i + 1);
    if (s.value.empty() || s.value.find(' ') != std::string::npos) { err("bad value"); continue; }
    if (s.value != "+Inf" && s.value != "-Inf" && s.value != "NaN") {
      std::size_t used = 0;
      try { std::stod(s.value, &used); } catch (...) { used = 0; }
      if (used != s.value.size()) { err("value not a number"); continue; }
    }
    if (family_of(s.name, x.types).empty()) err("sample before its # TYPE");
    x.samples.push_back(std::move(s));
  }
  for (const auto& [name, c] : x.type_count)
    if (c != 1 || x.help_count[name] != 1) x.errors.push_back(name + ": HELP/TYPE not exactly once");
  for (const auto& [name, c] : x.help_count)
    if (!x.type_count.count(name)) x.errors.push_back(name + ": HELP without TYPE");
  return x;
}

}  // namespace mdshm::test
