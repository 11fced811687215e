// File-level helpers of the history store: reading and validating a whole file, writing a file
// crash-safely (temp + fsync + rename + directory fsync), errno text. Internal to daemon/store.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "store/store_format.hpp"

namespace mdshm::store {

struct Status;

class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&&) = delete;
  ~UniqueFd();
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_;
};

// "No space left on device (ENOSPC)"
std::string errno_text(int err);

// 0 or the errno of the failure (a write that makes no progress counts as EIO).
int pwrite_all(int fd, const void* data, std::size_t len, std::uint64_t offset);

std::string temp_path_for(const std::string& path);

// Writes header + records to temp_path_for(path), fsyncs it, takes its flock, renames it over
// `path` and fsyncs the directory. Returns the open, locked descriptor of the new file, or -1 with
// `err` filled (and the temp file removed).
int write_file_atomically(const std::string& path, const FileHeader& header, std::span<const Record> records,
                          Status& err);

struct LoadResult {
  std::vector<Bar> bars;           // distinct open times ascending; the highest sequence won
  std::uint64_t file_size = 0;
  std::uint64_t valid_end = 0;     // end of the last valid record (or of the header)
  std::uint64_t records_read = 0;  // valid records
  std::uint64_t corrupt_skipped = 0;   // invalid whole records followed by a valid one
  // Invalid whole records after the last valid one, and how many of those hold a nonzero byte:
  // zeros are space a crash left unwritten, garbage in more than one record is damage, not a tear.
  std::uint64_t trailing_invalid = 0;
  std::uint64_t trailing_garbage = 0;
  std::uint64_t max_sequence = 0;  // highest valid sequence (0 when none)
  int io_errno = 0;
};

// Reads and validates the whole file. `problem` is set (and nothing loaded) when the header is
// missing or belongs to another series or build.
LoadResult load_file(int fd, const SeriesIdentity& id, std::string& problem);

}  // namespace mdshm::store
