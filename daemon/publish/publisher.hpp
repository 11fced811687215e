// Everything the daemon needs to publish an instance: the single-writer lock, one SegmentWriter
// per series, the consumer registry and the heartbeat thread (every 50 ms). There is no notifier
// thread: the feed thread wakes blocked readers once per batch with wake_readers().
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "publish/segment_writer.hpp"

namespace mdshm::publish {

enum class LogLevel { debug, info, warn, error };
using LogFn = std::function<void(LogLevel, std::string_view)>;

struct PublisherOptions {
  SegmentOptions segments;
  std::string lock_path;       // empty: paths::lock (in the instance directory)
  LogFn log;                   // may be empty
};

// Thrown when another live writer holds the instance lock.
struct WriterLockHeld : std::runtime_error {
  WriterLockHeld(const std::string& what, pid_t holder) : std::runtime_error(what), holder_pid(holder) {}
  pid_t holder_pid;
};

class Publisher {
 public:
  Publisher(PublisherOptions opt, const std::vector<SeriesSpec>& series);
  ~Publisher();  // stops the threads, releases the lock; segments stay for readers (on purpose)
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  std::size_t size() const;
  SegmentWriter& at(std::size_t i);
  SegmentWriter* find(std::string_view series_id);
  const std::vector<AttachInfo>& attach_info() const;
  std::string consumers_dir() const;  // the consumer registry (registry_layout.hpp)

  // Removes records of dead, forged or invalid consumers; the heartbeat thread calls it every
  // second. Returns how many it removed.
  std::size_t reclaim_dead_consumers();

  // SegmentWriter::wake_readers() for every series: call once after each batch of publishes
  // (a batch of socket reads, a poll of the source). Returns the number of FUTEX_WAKE calls.
  std::size_t wake_readers();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mdshm::publish
