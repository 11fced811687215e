#include "store/history_store.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <utility>

#include "store/store_file_io.hpp"

namespace mdshm::store {

namespace {

std::int64_t wall_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

[[noreturn]] void throw_io(const std::string& path, const char* what, int err) {
  throw StoreError(StoreError::Kind::io, err, "history store " + path + ": " + what + ": " + errno_text(err));
}

void check_options(const StoreOptions& o) {
  auto bad = [](const std::string& why) {
    throw StoreError(StoreError::Kind::bad_options, EINVAL, "history store: " + why);
  };
  if (o.dir.empty()) bad("store directory is empty");
  if (!valid_instance(o.instance)) bad("invalid instance name '" + o.instance + "'");
  if (!valid_series_id(o.series.series_id)) bad("invalid series id '" + o.series.series_id + "'");
  if (o.series.symbol.empty() || o.series.symbol.size() >= kSymbolLen) bad("invalid symbol '" + o.series.symbol + "'");
  if (o.series.interval_s == 0) bad("interval of series '" + o.series.series_id + "' is 0");
  if (o.capacity == 0 || o.capacity > kMaxCapacity) bad("capacity of series '" + o.series.series_id + "' out of range");
  if (o.compact_factor != 0 && o.compact_factor < 1.0) bad("compact_factor must be 0 (off) or >= 1");
}

// Opens the existing file and takes its lock, re-checking that the locked inode is still the one at
// `path` (a compaction by a previous holder may have renamed a new file over it meanwhile).
// Returns -1 with errno ENOENT when there is no file.
int open_locked_existing(const std::string& path) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
    if (!fd) {
      if (errno == ENOENT) return -1;
      throw_io(path, "cannot open", errno);
    }
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      if (err == EWOULDBLOCK)
        throw StoreError(StoreError::Kind::locked, err,
                         "history store " + path + ": locked by another process (a second daemon on this instance?)");
      throw_io(path, "cannot lock", err);
    }
    struct stat by_fd {}, by_name {};
    if (::fstat(fd.get(), &by_fd) == 0 && ::stat(path.c_str(), &by_name) == 0 && by_fd.st_ino == by_name.st_ino &&
        by_fd.st_dev == by_name.st_dev)
      return fd.release();
  }
  throw StoreError(StoreError::Kind::io, EAGAIN, "history store " + path + ": file keeps being replaced while opening");
}

}  // namespace

std::string store_path(const std::string& dir, const std::string& instance, const std::string& series_id) {
  return (std::filesystem::path(dir) / instance / (series_id + ".bars")).string();
}

const char* to_string(FsyncPolicy p) {
  switch (p) {
    case FsyncPolicy::never: return "never";
    case FsyncPolicy::interval: return "interval";
    case FsyncPolicy::always: return "always";
  }
  return "?";
}

HistoryStore HistoryStore::open(const StoreOptions& opt) {
  check_options(opt);
  HistoryStore s;
  s.opt_ = opt;
  s.path_ = store_path(opt.dir, opt.instance, opt.series.series_id);
  const std::string tmp = temp_path_for(s.path_);

  std::error_code ec;
  const auto parent = std::filesystem::path(s.path_).parent_path();
  std::filesystem::create_directories(parent, ec);
  if (ec) throw_io(parent.string(), "cannot create directory", ec.value());

  s.fd_ = open_locked_existing(s.path_);
  // A temp file left by a compaction (or creation) that crashed before its rename: the real file is
  // intact and we hold its lock, so nobody else is writing the temp.
  if (s.fd_ >= 0 && ::unlink(tmp.c_str()) == 0)
    s.notes_.push_back("removed " + tmp + " left by an interrupted compaction");

  LoadResult loaded;
  for (int attempt = 0;; ++attempt) {
    if (s.fd_ < 0) {
      Status st;
      s.fd_ = write_file_atomically(s.path_, make_header(opt.series, wall_ns()), {}, st);
      if (s.fd_ < 0) throw StoreError(StoreError::Kind::io, st.sys_errno, st.message);
      s.notes_.push_back("created " + s.path_);
    }
    std::string problem;
    loaded = load_file(s.fd_, opt.series, problem);
    if (loaded.io_errno != 0) throw_io(s.path_, "cannot read", loaded.io_errno);
    if (problem.empty()) break;
    if (opt.on_mismatch == MismatchPolicy::refuse || attempt > 0)
      throw StoreError(StoreError::Kind::header_mismatch, 0,
                       "history store " + s.path_ + ": " + problem + "; refusing to use it (move it aside or delete it)");
    const std::string aside = s.path_ + ".bad-" + std::to_string(wall_ns() / 1'000'000'000);
    if (::rename(s.path_.c_str(), aside.c_str()) != 0) throw_io(s.path_, "cannot move aside", errno);
    ::close(s.fd_);
    s.fd_ = -1;
    s.notes_.push_back("moved " + s.path_ + " aside to " + aside + ": " + problem);
  }

  s.end_offset_ = loaded.valid_end;
  s.stats_.corrupt_skipped = loaded.corrupt_skipped;
  s.stats_.records_read = loaded.records_read;
  if (loaded.file_size > loaded.valid_end) {
    s.stats_.torn_tail_bytes_cut = loaded.file_size - loaded.valid_end;
    if (::ftruncate(s.fd_, static_cast<off_t>(loaded.valid_end)) != 0) throw_io(s.path_, "cannot cut torn tail", errno);
    if (opt.fsync != FsyncPolicy::never && ::fdatasync(s.fd_) != 0) throw_io(s.path_, "fdatasync", errno);
    s.notes_.push_back("cut a torn tail of " + std::to_string(s.stats_.torn_tail_bytes_cut) + " bytes from " +
                       s.path_);
  }
  if (loaded.corrupt_skipped > 0)
    s.notes_.push_back("skipped " + std::to_string(loaded.corrupt_skipped) + " corrupt records in " + s.path_);
  s.stats_.records_on_disk = (s.end_offset_ - kFileHeaderSize) / kStoreRecordSize;
  s.next_sequence_ = loaded.max_sequence + 1;

  s.open_times_.reserve(loaded.bars.size());
  for (const Bar& b : loaded.bars) s.open_times_.push_back(b.open_time_ms);
  const std::size_t keep = std::min<std::size_t>(loaded.bars.size(), opt.capacity);
  s.loaded_.assign(loaded.bars.end() - static_cast<std::ptrdiff_t>(keep), loaded.bars.end());
  s.stats_.loaded = s.loaded_.size();
  s.last_sync_ = std::chrono::steady_clock::now();

  if (Status st = s.compact_if_due_(); !st.ok()) s.notes_.push_back("compaction at open failed: " + st.message);
  return s;
}

HistoryStore::HistoryStore(HistoryStore&& o) noexcept { *this = std::move(o); }

HistoryStore& HistoryStore::operator=(HistoryStore&& o) noexcept {
  if (this != &o) {
    close_();
    opt_ = std::move(o.opt_);
    path_ = std::move(o.path_);
    fd_ = std::exchange(o.fd_, -1);
    end_offset_ = o.end_offset_;
    next_sequence_ = o.next_sequence_;
    dirty_ = std::exchange(o.dirty_, false);
    last_sync_ = o.last_sync_;
    open_times_ = std::move(o.open_times_);
    loaded_ = std::move(o.loaded_);
    notes_ = std::move(o.notes_);
    stats_ = o.stats_;
  }
  return *this;
}

HistoryStore::~HistoryStore() { close_(); }

void HistoryStore::close_() noexcept {
  if (fd_ < 0) return;
  if (dirty_ && opt_.fsync != FsyncPolicy::never) (void)::fdatasync(fd_);
  ::close(fd_);  // releases the flock
  fd_ = -1;
}

Status HistoryStore::append(const Bar& bar) { return append(std::span<const Bar>(&bar, 1)); }

Status HistoryStore::append(std::span<const Bar> bars) {
  if (fd_ < 0) return {EBADF, "history store " + path_ + ": not open"};
  std::vector<Record> recs;
  recs.reserve(bars.size());
  for (const Bar& b : bars) {
    recs.push_back(make_record(b, next_sequence_ + recs.size()));
    if (!record_valid(recs.back(), opt_.series.interval_s)) {
      ++stats_.append_errors;
      return {EINVAL, "history store " + path_ + ": refusing bar at " + std::to_string(b.open_time_ms) +
                          " (unaligned open time or impossible values)"};
    }
  }
  if (Status st = write_records_(recs.data(), recs.size()); !st.ok()) {
    ++stats_.append_errors;
    return st;
  }
  next_sequence_ += recs.size();
  stats_.appended += recs.size();
  stats_.records_on_disk += recs.size();
  for (const Bar& b : bars) remember_(b.open_time_ms);
  dirty_ = true;

  if (opt_.fsync == FsyncPolicy::always) {
    if (Status st = sync_(); !st.ok()) return st;
  } else if (opt_.fsync == FsyncPolicy::interval) {
    if (Status st = maybe_sync(std::chrono::steady_clock::now()); !st.ok()) return st;
  }
  return compact_if_due_();
}

Status HistoryStore::write_records_(const Record* recs, std::size_t n) {
  const int err = pwrite_all(fd_, recs, n * sizeof(Record), end_offset_);
  if (err == 0) {
    end_offset_ += n * sizeof(Record);
    return {};
  }
  // A short write would leave a partial record in the middle of later appends: cut it off so the
  // file stays a whole number of records.
  (void)::ftruncate(fd_, static_cast<off_t>(end_offset_));
  return {err, "history store " + path_ + ": cannot append: " + errno_text(err)};
}

Status HistoryStore::sync_() {
  if (::fdatasync(fd_) != 0) {
    const int err = errno;
    return {err, "history store " + path_ + ": fdatasync: " + errno_text(err)};
  }
  dirty_ = false;
  last_sync_ = std::chrono::steady_clock::now();
  ++stats_.syncs;
  return {};
}

Status HistoryStore::flush() {
  if (fd_ < 0) return {EBADF, "history store " + path_ + ": not open"};
  return dirty_ ? sync_() : Status{};
}

Status HistoryStore::maybe_sync(std::chrono::steady_clock::time_point now) {
  if (fd_ < 0 || !dirty_ || opt_.fsync == FsyncPolicy::never) return {};
  if (opt_.fsync == FsyncPolicy::interval && now - last_sync_ < opt_.fsync_interval) return {};
  return sync_();
}

Status HistoryStore::compact_if_due_() {
  if (opt_.compact_factor <= 0) return {};
  const auto limit = static_cast<std::uint64_t>(opt_.compact_factor * static_cast<double>(opt_.capacity));
  return stats_.records_on_disk > limit ? compact() : Status{};
}

Status HistoryStore::compact() {
  if (fd_ < 0) return {EBADF, "history store " + path_ + ": not open"};
  std::string problem;
  LoadResult all = load_file(fd_, opt_.series, problem);  // reads our own appends via the page cache
  if (all.io_errno != 0) return {all.io_errno, "history store " + path_ + ": compaction read: " + errno_text(all.io_errno)};
  if (!problem.empty()) return {EIO, "history store " + path_ + ": compaction: " + problem};

  const std::size_t keep = std::min<std::size_t>(all.bars.size(), opt_.capacity);
  std::vector<Record> recs;
  recs.reserve(keep);
  for (std::size_t i = all.bars.size() - keep; i < all.bars.size(); ++i)
    recs.push_back(make_record(all.bars[i], recs.size()));

  Status st;
  const int fd = write_file_atomically(path_, make_header(opt_.series, wall_ns()), recs, st);
  if (fd < 0) return st;
  ::close(fd_);
  fd_ = fd;
  end_offset_ = kFileHeaderSize + recs.size() * sizeof(Record);
  next_sequence_ = recs.size();
  dirty_ = false;
  stats_.records_on_disk = recs.size();
  ++stats_.compactions;
  open_times_.clear();
  for (const Record& r : recs) open_times_.push_back(r.bar.open_time_ms);
  return {};
}

void HistoryStore::remember_(std::int64_t t) {
  if (open_times_.empty() || t > open_times_.back()) {
    open_times_.push_back(t);
    return;
  }
  auto it = std::lower_bound(open_times_.begin(), open_times_.end(), t);
  if (it == open_times_.end() || *it != t) open_times_.insert(it, t);
}

std::vector<TimeRange> HistoryStore::missing(std::int64_t from_ms, std::int64_t to_ms) const {
  return missing_ranges(open_times_, from_ms, to_ms, opt_.series.interval_s);
}

bool HistoryStore::contains(std::int64_t t) const {
  return std::binary_search(open_times_.begin(), open_times_.end(), t);
}

}  // namespace mdshm::store
