// Where an instance's files live: the one place both the writer and every reader take names from.
//
//   <shm_dir>/mdshm.<instance>/                the instance directory: created by the daemon, owned
//                                              by its user, mode 0750 (group = the readers' group)
//   <shm_dir>/mdshm.<instance>/<series>        data segment, one per series (layout.hpp)
//   <shm_dir>/mdshm.<instance>/@lock           single-writer lock (default; configurable)
//   <shm_dir>/mdshm.<instance>/@new.<series>   a segment being created, renamed into place when ready
//   <shm_dir>/mdshm.<instance>/@consumers/     consumer registry: one record file per consumer
//                                              (registry_layout.hpp)
//
// Why a directory: /dev/shm is writable by every account, so any user could create an instance's
// names first (after every reboot it is empty) and the daemon would then write, and readers read,
// files that user can still change. Inside a directory only the daemon's user can create names; the
// daemon verifies the directory on every start (docs/OPERATIONS.md, "Security model").
// '@' cannot occur in a series name, so the names never collide with each other.
#pragma once

#include <string>
#include <string_view>

#include "mdshm/layout.hpp"

namespace mdshm::paths {

// The directory that holds an instance's names.
inline std::string instance_dir(std::string_view shm_dir, std::string_view instance) {
  return std::string(shm_dir) + "/" + std::string(kSegmentPrefix) + std::string(instance);
}
inline std::string segment(std::string_view shm_dir, std::string_view instance, std::string_view series_id) {
  return instance_dir(shm_dir, instance) + "/" + std::string(series_id);
}
inline std::string segment_temp(std::string_view shm_dir, std::string_view instance, std::string_view series_id) {
  return instance_dir(shm_dir, instance) + "/@new." + std::string(series_id);
}
// Layout 1's shared consumer table, beside (not in) the instance directory. Only the daemon uses
// the name, to remove such a file of its own that an older version left.
inline std::string legacy_registry(std::string_view shm_dir, std::string_view instance) {
  return std::string(shm_dir) + "/" + std::string(kSegmentPrefix) + std::string(instance) + "@registry";
}
inline std::string lock(std::string_view shm_dir, std::string_view instance) {
  return instance_dir(shm_dir, instance) + "/@lock";
}
inline std::string consumers_dir(std::string_view shm_dir, std::string_view instance) {
  return instance_dir(shm_dir, instance) + "/@consumers";
}
// True for a directory entry of the instance directory that is a series segment (not '@' files).
constexpr bool is_segment_name(std::string_view name) { return valid_series_id(name); }

}  // namespace mdshm::paths
