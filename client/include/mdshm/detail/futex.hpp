// Kept for code written against the old location: the helpers live in shm_layout now
// (mdshm/platform/futex.hpp), shared by the daemon and the client.
#pragma once

#include "mdshm/platform/futex.hpp"

namespace mdshm::detail {
using namespace mdshm::platform;
}  // namespace mdshm::detail
