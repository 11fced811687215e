// Errors are values: every client call returns an Errc (fast paths) or a Result<T> that carries an
// Error with a message naming the segment and the problem (open paths).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "mdshm/layout.hpp"

namespace mdshm {

enum class Errc {
  ok = 0,
  not_found,             // no segment at that path (daemon not started, wrong instance)
  permission_denied,     // not in the segments' group
  io_error,
  too_small,             // the HeaderProblem values, one for one
  bad_magic,
  version_mismatch,
  hash_mismatch,
  arch_mismatch,
  bad_geometry,
  truncated,
  bad_names,
  not_ready,             // writer initialising: try again shortly
  retired,               // replaced by the writer: refresh() re-opens by name
  bad_state,             // unknown state value: corrupt, do not retry
  name_mismatch,         // header's instance/series differ from the file name
  empty,                 // no bar published yet
  not_held,              // that bar index is not (or no longer) in the ring
  lapped,                // the writer overwrote what was being read
  contended,             // no consistent copy within the read bound (OpenOptions::read_bound)
  corrupt,               // a slot holds a bar the head says cannot be there (not a race: damage)
  timeout,
  writer_dead,
  registry_unavailable,  // the consumer registry cannot be opened read-write
  registry_full,
  invalid_argument,
  symlink_refused,       // a symbolic link where a segment or the instance directory should be
  untrusted_owner,       // owned by someone other than the expected writer, or writable by others
};

inline std::string_view to_string(Errc e) {
  switch (e) {
    case Errc::ok: return "ok";
    case Errc::not_found: return "segment not found";
    case Errc::permission_denied: return "permission denied";
    case Errc::io_error: return "I/O error";
    case Errc::too_small: return to_string(HeaderProblem::too_small);
    case Errc::bad_magic: return to_string(HeaderProblem::bad_magic);
    case Errc::version_mismatch: return to_string(HeaderProblem::version_mismatch);
    case Errc::hash_mismatch: return to_string(HeaderProblem::hash_mismatch);
    case Errc::arch_mismatch: return to_string(HeaderProblem::arch_mismatch);
    case Errc::bad_geometry: return to_string(HeaderProblem::bad_geometry);
    case Errc::truncated: return to_string(HeaderProblem::truncated);
    case Errc::bad_names: return to_string(HeaderProblem::bad_names);
    case Errc::not_ready: return to_string(HeaderProblem::not_ready);
    case Errc::retired: return to_string(HeaderProblem::retired);
    case Errc::bad_state: return to_string(HeaderProblem::bad_state);
    case Errc::name_mismatch: return to_string(HeaderProblem::name_mismatch);
    case Errc::empty: return "no bar published yet";
    case Errc::not_held: return "bar not held in the ring";
    case Errc::lapped: return "lapped by the writer";
    case Errc::contended: return "no consistent copy within the read bound";
    case Errc::corrupt: return "segment corrupt: a slot disagrees with the head";
    case Errc::timeout: return "timed out";
    case Errc::writer_dead: return "writer dead";
    case Errc::registry_unavailable: return "consumer registry unavailable";
    case Errc::registry_full: return "consumer registry full";
    case Errc::invalid_argument: return "invalid argument";
    case Errc::symlink_refused: return "refused a symbolic link";
    case Errc::untrusted_owner: return "not written by the expected writer";
  }
  return "unknown";
}

inline Errc to_errc(HeaderProblem p) {
  switch (p) {
    case HeaderProblem::none: return Errc::ok;
    case HeaderProblem::too_small: return Errc::too_small;
    case HeaderProblem::bad_magic: return Errc::bad_magic;
    case HeaderProblem::version_mismatch: return Errc::version_mismatch;
    case HeaderProblem::hash_mismatch: return Errc::hash_mismatch;
    case HeaderProblem::arch_mismatch: return Errc::arch_mismatch;
    case HeaderProblem::bad_geometry: return Errc::bad_geometry;
    case HeaderProblem::truncated: return Errc::truncated;
    case HeaderProblem::bad_names: return Errc::bad_names;
    case HeaderProblem::not_ready: return Errc::not_ready;
    case HeaderProblem::retired: return Errc::retired;
    case HeaderProblem::bad_state: return Errc::bad_state;
    case HeaderProblem::name_mismatch: return Errc::name_mismatch;
  }
  return Errc::io_error;
}

struct Error {
  Errc code = Errc::ok;
  std::string message;  // names the path and the problem
};

template <class T>
class Result {
 public:
  Result(T v) : v_(std::move(v)) {}                 // NOLINT: implicit on purpose
  Result(Error e) : v_(std::move(e)) {}             // NOLINT
  explicit operator bool() const { return v_.index() == 0; }
  bool ok() const { return v_.index() == 0; }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const T& value() const& { return std::get<0>(v_); }
  T* operator->() { return &value(); }
  T& operator*() & { return value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

}  // namespace mdshm
