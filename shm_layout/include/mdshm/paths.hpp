// Where an instance's files live: the one place both the writer and every reader take names from.
//
//   <shm_dir>/mdshm.<instance>.<series>      data segment, one per series (layout.hpp)
//   <shm_dir>/mdshm.<instance>@registry      consumer registry (registry_layout.hpp)
//   <shm_dir>/mdshm.<instance>@lock          single-writer lock (default; configurable)
//   <shm_dir>/mdshm.<instance>@new.<series>  a segment being created, renamed into place when ready
//   <shm_dir>/mdshm.<instance>@consumers     directory reserved for per-consumer files
//
// '@' cannot occur in an instance or series name, so these never collide with each other.
#pragma once

#include <string>
#include <string_view>

#include "mdshm/layout.hpp"

namespace mdshm::paths {

// The directory that holds an instance's names.
inline std::string instance_dir(std::string_view shm_dir, std::string_view /*instance*/) { return std::string(shm_dir); }

inline std::string instance_stem(std::string_view shm_dir, std::string_view instance) {
  return instance_dir(shm_dir, instance) + "/" + std::string(kSegmentPrefix) + std::string(instance);
}
inline std::string segment(std::string_view shm_dir, std::string_view instance, std::string_view series_id) {
  return instance_stem(shm_dir, instance) + "." + std::string(series_id);
}
inline std::string segment_temp(std::string_view shm_dir, std::string_view instance, std::string_view series_id) {
  return instance_stem(shm_dir, instance) + "@new." + std::string(series_id);
}
inline std::string registry(std::string_view shm_dir, std::string_view instance) {
  return instance_stem(shm_dir, instance) + "@registry";
}
inline std::string lock(std::string_view shm_dir, std::string_view instance) {
  return instance_stem(shm_dir, instance) + "@lock";
}
inline std::string consumers_dir(std::string_view shm_dir, std::string_view instance) {
  return instance_stem(shm_dir, instance) + "@consumers";
}

}  // namespace mdshm::paths
