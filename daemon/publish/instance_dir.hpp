// The instance directory (paths.hpp): created by the daemon, or verified when it exists, before the
// daemon takes the lock or opens any file in it. Only the daemon's user may create names in it, so
// no other account can plant a segment, a lock or a symlink there.
#pragma once

#include <string>
#include <vector>

#include "publish/segment_writer.hpp"

namespace mdshm::publish {

// Creates <shm_dir>/mdshm.<instance>/ (owner: our euid, group opt.group, mode 0700 plus read and
// search for whoever may read the segments), or checks the one that exists: a directory, not a
// symlink, owned by our euid. One owned by someone else is moved aside when we may (a root daemon)
// and replaced, otherwise start-up stops with an error naming the owner. A group/other-writable
// mode on our own directory is corrected. Also refuses a shm_dir where other users could rename
// the instance directory (writable by others without the sticky bit, or owned by another user).
// Throws std::runtime_error; `notes` receives one line per thing corrected or replaced.
void prepare_instance_dir(const SegmentOptions& opt, std::vector<std::string>& notes);

}  // namespace mdshm::publish
