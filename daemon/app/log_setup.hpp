// The daemon's log format. Timestamps are UTC with the offset written out (like the inspector's),
// and when stderr is the journal (systemd sets JOURNAL_STREAM to its device:inode) each line starts
// with a syslog priority "<N>", which journald strips and stores as the entry's PRIORITY.
#pragma once

#include <spdlog/common.h>

#include <string>

namespace mdshm::app {

// True when file descriptor 2 is the stream JOURNAL_STREAM names.
[[nodiscard]] bool stderr_is_journal();

// syslog(3) priority of a level: debug/trace 7, info 6, warn 4, error 3, critical 2.
[[nodiscard]] int syslog_priority(spdlog::level::level_enum level);

// Installs the stderr logger "mdshmd" as the default, at `level`.
void setup_logging(spdlog::level::level_enum level);

}  // namespace mdshm::app
