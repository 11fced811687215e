#include "store/store_file_io.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "store/history_store.hpp"

namespace mdshm::store {

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

std::string errno_text(int err) {
  const char* name = ::strerrorname_np(err);
  return std::string(std::strerror(err)) + " (" + (name ? name : std::to_string(err).c_str()) + ")";
}

int pwrite_all(int fd, const void* data, std::size_t len, std::uint64_t offset) {
  const auto* p = static_cast<const char*>(data);
  while (len > 0) {
    const ssize_t n = ::pwrite(fd, p, len, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;
    p += n;
    len -= static_cast<std::size_t>(n);
    offset += static_cast<std::uint64_t>(n);
  }
  return 0;
}

std::string temp_path_for(const std::string& path) { return path + ".tmp"; }

int write_file_atomically(const std::string& path, const FileHeader& header, std::span<const Record> records,
                          Status& err) {
  const std::string tmp = temp_path_for(path);
  auto fail = [&](const char* what, int e) {
    err = {e, "history store " + tmp + ": " + what + ": " + errno_text(e)};
    ::unlink(tmp.c_str());
    return -1;
  };
  UniqueFd fd(::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640));
  if (!fd) return fail("cannot create", errno);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) return fail("cannot lock", errno);
  if (int e = pwrite_all(fd.get(), &header, sizeof header, 0)) return fail("cannot write", e);
  if (int e = pwrite_all(fd.get(), records.data(), records.size_bytes(), sizeof header)) return fail("cannot write", e);
  if (::fsync(fd.get()) != 0) return fail("fsync", errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail("cannot rename over the store file", errno);
  // The rename is durable only once the directory entry is: without this a power cut could bring
  // back the old file, which is still a consistent store, so a failure here is not fatal.
  const auto dir = std::filesystem::path(path).parent_path().string();
  if (UniqueFd dfd(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)); dfd)
    (void)::fsync(dfd.get());
  return fd.release();
}

namespace {

struct Entry {
  std::uint64_t sequence;
  Bar bar;
};

bool all_zero(const Record& r) {
  const auto* p = reinterpret_cast<const unsigned char*>(&r);
  return std::all_of(p, p + sizeof r, [](unsigned char c) { return c == 0; });
}

}  // namespace

LoadResult load_file(int fd, const SeriesIdentity& id, std::string& problem) {
  LoadResult r;
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    r.io_errno = errno;
    return r;
  }
  r.file_size = static_cast<std::uint64_t>(st.st_size);
  FileHeader h{};
  if (r.file_size < sizeof h) {
    problem = "file of " + std::to_string(r.file_size) + " bytes is shorter than a store header";
    return r;
  }
  if (::pread(fd, &h, sizeof h, 0) != static_cast<ssize_t>(sizeof h)) {
    r.io_errno = errno ? errno : EIO;
    return r;
  }
  problem = header_problem(h, id);
  if (!problem.empty()) return r;

  r.valid_end = sizeof h;
  std::vector<Entry> entries;
  // Bounded: a huge (sparse or hostile) file must not make the reservation itself fail.
  entries.reserve(static_cast<std::size_t>(std::min<std::uint64_t>((r.file_size - sizeof h) / sizeof(Record), 1u << 20)));
  std::uint64_t invalid_since_last_valid = 0;
  std::uint64_t garbage_since_last_valid = 0;
  constexpr std::size_t kChunkRecords = 4096;  // 512 KiB per read
  std::vector<Record> chunk(kChunkRecords);
  std::uint64_t offset = sizeof h;
  while (offset + sizeof(Record) <= r.file_size) {
    const std::uint64_t whole = (r.file_size - offset) / sizeof(Record);
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(whole, kChunkRecords));
    const ssize_t got = ::pread(fd, chunk.data(), want * sizeof(Record), static_cast<off_t>(offset));
    if (got < 0) {
      if (errno == EINTR) continue;
      r.io_errno = errno;
      return r;
    }
    const std::size_t n = static_cast<std::size_t>(got) / sizeof(Record);
    if (n == 0) break;  // file shrank under us: treat the rest as a torn tail
    for (std::size_t i = 0; i < n; ++i) {
      offset += sizeof(Record);
      if (!record_valid(chunk[i], id.interval_s)) {
        ++invalid_since_last_valid;
        garbage_since_last_valid += !all_zero(chunk[i]);
        continue;
      }
      r.corrupt_skipped += invalid_since_last_valid;  // invalid records followed by a valid one
      invalid_since_last_valid = garbage_since_last_valid = 0;
      r.valid_end = offset;
      r.max_sequence = std::max(r.max_sequence, chunk[i].sequence);
      entries.push_back({chunk[i].sequence, chunk[i].bar});
    }
  }
  r.records_read = entries.size();
  r.trailing_invalid = invalid_since_last_valid;
  r.trailing_garbage = garbage_since_last_valid;

  // Last record for an open time wins: sort by (open time, sequence), keep the last of each run.
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.bar.open_time_ms != b.bar.open_time_ms ? a.bar.open_time_ms < b.bar.open_time_ms
                                                    : a.sequence < b.sequence;
  });
  r.bars.reserve(entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i)
    if (i + 1 == entries.size() || entries[i + 1].bar.open_time_ms != entries[i].bar.open_time_ms)
      r.bars.push_back(entries[i].bar);
  return r;
}

}  // namespace mdshm::store
