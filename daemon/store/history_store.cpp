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

  s.stats_.corrupt_skipped = loaded.corrupt_skipped;
  s.stats_.records_read = loaded.records_read;
  // One garbage record at the end is a torn append, zeros are unwritten space; anything more is
  // damage, and damage is kept aside rather than cut (see the header comment).
  const bool damaged = loaded.corrupt_skipped > 0 || loaded.trailing_garbage > 1;
  if (damaged) {
    const std::uint64_t bad = loaded.corrupt_skipped + loaded.trailing_invalid;
    s.stats_.corrupt_skipped = bad;
    s.health_.corrupt_records = bad;
    // A hard link first: there is a store file at path_ at every moment, old or salvaged. A second
    // damage in the same second gets a numbered name rather than replacing the first copy.
    const std::string stem = s.path_ + ".damaged-" + std::to_string(wall_ns() / 1'000'000'000);
    std::string aside = stem;
    for (int n = 1; ::link(s.path_.c_str(), aside.c_str()) != 0; ++n) {
      if (errno != EEXIST || n > 99) throw_io(s.path_, "cannot keep the damaged file aside", errno);
      aside = stem + "." + std::to_string(n);
    }
    std::vector<Record> recs;
    recs.reserve(loaded.bars.size());
    for (const Bar& b : loaded.bars) recs.push_back(make_record(b, recs.size()));
    Status st;
    const int fd = write_file_atomically(s.path_, make_header(opt.series, wall_ns()), recs, st);
    if (fd < 0) throw StoreError(StoreError::Kind::io, st.sys_errno, st.message);
    ::close(s.fd_);
    s.fd_ = fd;
    s.end_offset_ = kFileHeaderSize + recs.size() * kStoreRecordSize;
    loaded.max_sequence = recs.empty() ? 0 : recs.size() - 1;
    s.notes_.push_back("skipped " + std::to_string(bad) + " corrupt records in " + s.path_ + ": salvaged " +
                       std::to_string(recs.size()) + " good bar(s) into a fresh file, kept the damaged one as " + aside);
  } else {
    s.end_offset_ = loaded.valid_end;
    if (loaded.file_size > loaded.valid_end) {
      s.stats_.torn_tail_bytes_cut = loaded.file_size - loaded.valid_end;
      if (::ftruncate(s.fd_, static_cast<off_t>(loaded.valid_end)) != 0) throw_io(s.path_, "cannot cut torn tail", errno);
      if (opt.fsync != FsyncPolicy::never && ::fdatasync(s.fd_) != 0) throw_io(s.path_, "fdatasync", errno);
      s.notes_.push_back("cut a torn tail of " + std::to_string(s.stats_.torn_tail_bytes_cut) + " bytes from " +
                         s.path_);
    }
  }
  s.stats_.records_on_disk = (s.end_offset_ - kFileHeaderSize) / kStoreRecordSize;
  s.next_sequence_ = loaded.max_sequence + 1;
  s.last_attempt_ = s.last_sync_ = std::chrono::steady_clock::now();

  s.open_times_.reserve(loaded.bars.size());
  for (const Bar& b : loaded.bars) s.open_times_.push_back(b.open_time_ms);
  const std::size_t keep = std::min<std::size_t>(loaded.bars.size(), opt.capacity);
  s.loaded_.assign(loaded.bars.end() - static_cast<std::ptrdiff_t>(keep), loaded.bars.end());
  s.stats_.loaded = s.loaded_.size();

  if (Status st = s.compact_if_due_(); !st.ok()) s.notes_.push_back("compaction at open failed: " + st.message);
  return s;
}

HistoryStore HistoryStore::open_or_defer(const StoreOptions& opt) {
  try {
    return open(opt);
  } catch (const StoreError& e) {
    if (e.kind != StoreError::Kind::io) throw;
    HistoryStore s;
    s.opt_ = opt;
    s.path_ = store_path(opt.dir, opt.instance, opt.series.series_id);
    s.last_attempt_ = std::chrono::steady_clock::now();
    s.failed_(e.sys_errno, e.what());
    s.health_.state = StoreState::unavailable;
    s.notes_.push_back(std::string(e.what()) + "; keeping closed bars in memory and retrying every " +
                       std::to_string(opt.retry_interval.count()) + " ms");
    return s;
  }
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
    pending_ = std::move(o.pending_);
    last_attempt_ = o.last_attempt_;
    health_ = std::move(o.health_);
    observer_ = std::move(o.observer_);
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
  for (const Bar& b : bars)
    if (!record_valid(make_record(b, 0), opt_.series.interval_s)) {
      ++stats_.append_errors;
      return {EINVAL, "history store " + path_ + ": refusing bar at " + std::to_string(b.open_time_ms) +
                          " (unaligned open time or impossible values)"};
    }
  pending_.insert(pending_.end(), bars.begin(), bars.end());
  if (pending_.size() > kMaxPendingBars) {
    const std::size_t drop = pending_.size() - kMaxPendingBars;
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(drop));
    health_.lost += drop;
  }
  const auto now = std::chrono::steady_clock::now();
  // A healthy store writes at once; a failing one retries at most every retry_interval.
  return drain_(now, health_.state == StoreState::ok);
}

Status HistoryStore::drain_(std::chrono::steady_clock::time_point now, bool force) {
  if (pending_.empty()) return {};
  if (!force && now - last_attempt_ < opt_.retry_interval) {
    if (health_.pending != pending_.size()) set_health_(health_.state);
    return pending_status_();
  }
  last_attempt_ = now;
  if (fd_ < 0 && !reopen_()) return pending_status_();
  std::vector<Record> recs;
  recs.reserve(pending_.size());
  for (const Bar& b : pending_) recs.push_back(make_record(b, next_sequence_ + recs.size()));
  if (Status st = write_records_(recs.data(), recs.size()); !st.ok()) {
    ++stats_.append_errors;
    failed_(st.sys_errno, st.message);
    return pending_status_();
  }
  next_sequence_ += recs.size();
  stats_.appended += recs.size();
  stats_.records_on_disk += recs.size();
  for (const Bar& b : pending_) remember_(b.open_time_ms);
  pending_.clear();
  dirty_ = true;
  set_health_(StoreState::ok);

  if (opt_.fsync == FsyncPolicy::always) {
    if (Status st = sync_(); !st.ok()) return st;
  } else if (opt_.fsync == FsyncPolicy::interval) {
    if (Status st = maybe_sync(now); !st.ok()) return st;
  }
  return compact_if_due_();
}

// Opens the file again for an unavailable store; the bars it loads are already published (or
// refilled by REST), so only its index of open times matters now.
bool HistoryStore::reopen_() {
  try {
    HistoryStore fresh = open(opt_);
    fd_ = std::exchange(fresh.fd_, -1);
    path_ = fresh.path_;
    end_offset_ = fresh.end_offset_;
    next_sequence_ = fresh.next_sequence_;
    dirty_ = false;
    last_sync_ = fresh.last_sync_;
    open_times_ = std::move(fresh.open_times_);
    for (auto& n : fresh.notes_) notes_.push_back(std::move(n));
    stats_.records_read = fresh.stats_.records_read;
    stats_.records_on_disk = fresh.stats_.records_on_disk;
    stats_.corrupt_skipped += fresh.stats_.corrupt_skipped;
    health_.corrupt_records += fresh.health_.corrupt_records;
    return true;
  } catch (const StoreError& e) {
    failed_(e.sys_errno, e.what());
    return false;
  }
}

void HistoryStore::failed_(int err, const std::string& message) {
  ++health_.errors;
  health_.last_errno = err;
  health_.last_error = message;
  set_health_(fd_ < 0 ? StoreState::unavailable : StoreState::failing);
}

void HistoryStore::set_health_(StoreState state) {
  health_.state = state;
  health_.pending = pending_.size();
  if (observer_) observer_(health_);
}

void HistoryStore::observe(std::function<void(const StoreHealth&)> fn) {
  observer_ = std::move(fn);
  set_health_(health_.state);
}

Status HistoryStore::pending_status_() const {
  return {health_.last_errno ? health_.last_errno : EIO,
          std::to_string(pending_.size()) + " closed bar(s) not written yet, retrying: " + health_.last_error};
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
    Status st{err, "history store " + path_ + ": fdatasync: " + errno_text(err)};
    failed_(err, st.message);
    return st;
  }
  dirty_ = false;
  last_sync_ = std::chrono::steady_clock::now();
  ++stats_.syncs;
  if (health_.state == StoreState::failing && pending_.empty()) set_health_(StoreState::ok);
  return {};
}

Status HistoryStore::flush() {
  if (Status st = drain_(std::chrono::steady_clock::now(), true); !st.ok()) return st;
  if (fd_ < 0) return {EBADF, "history store " + path_ + ": not open"};
  return dirty_ ? sync_() : Status{};
}

Status HistoryStore::maybe_sync(std::chrono::steady_clock::time_point now) {
  if (!pending_.empty()) return drain_(now, false);  // syncs as well once the bars are written
  if (fd_ < 0 || !dirty_ || opt_.fsync == FsyncPolicy::never) return {};
  if (opt_.fsync == FsyncPolicy::interval && now - last_sync_ < opt_.fsync_interval) return {};
  return sync_();
}

Status HistoryStore::compact_if_due_() {
  if (opt_.compact_factor <= 0) return {};
  const auto limit = static_cast<std::uint64_t>(opt_.compact_factor * static_cast<double>(opt_.capacity));
  if (stats_.records_on_disk <= limit) return {};
  Status st = compact();
  if (!st.ok()) failed_(st.sys_errno, st.message);
  return st;
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
