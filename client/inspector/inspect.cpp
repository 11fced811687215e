#include "inspect.hpp"

#include <dirent.h>
#include <grp.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace mdshm::inspect {

namespace {

double seconds_of(std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); }

// Identity readable from a file that failed validation: only when the magic says it is ours, so a
// garbage file is never interpreted beyond its first 12 bytes.
void read_version(Segment& seg, const OpenOptions& opt) {
  detail::Mapping m;
  if (detail::Mapping::map(seg.path, m, nullptr, opt.expected_owner) != Errc::ok) return;
  const auto& h = *static_cast<const SegmentHeader*>(m.base());
  if (load_field(h.magic) != kMagic) return;
  seg.layout_major = load_field(h.layout_major);
  seg.layout_minor = load_field(h.layout_minor);
}

Segment open_path(const OpenOptions& opt, std::string series, std::string path) {
  Segment seg;
  seg.series = std::move(series);
  seg.path = std::move(path);
  auto r = Series::open_path(seg.path, opt);
  if (r) {
    seg.handle.emplace(std::move(r.value()));
    return seg;
  }
  seg.error = r.error().code;
  seg.error_text = std::string(to_string(seg.error));
  // Whose file was refused is what the operator needs: keep the detail (the message minus the path).
  const std::string& msg = r.error().message;
  if ((seg.error == Errc::symlink_refused || seg.error == Errc::untrusted_owner) && msg.rfind(seg.path + ": ", 0) == 0)
    seg.error_text = msg.substr(seg.path.size() + 2);
  if (seg.error != Errc::not_found) read_version(seg, opt);
  return seg;
}

// Series::writer_state() trusts a fresh heartbeat without a syscall (readers call it often). The
// inspector asks the kernel every time: a writer killed a millisecond ago is reported dead.
WriterState exact_writer_state(const Series& s) {
  const SegmentHeader& h = s.header();
  std::uint8_t id[kBootIdLen];
  for (std::size_t i = 0; i < kBootIdLen; ++i) id[i] = load_field(h.boot_id[i]);
  const auto mine = detail::boot_id();
  if (std::memcmp(id, mine.data(), kBootIdLen) != 0) return WriterState::dead;
  const auto ps = detail::process_state(static_cast<pid_t>(load_field(h.writer_pid)), load_field(h.writer_start_ticks));
  if (ps == detail::ProcessState::dead) return WriterState::dead;
  return s.heartbeat_age() > kHeartbeatDeadline ? WriterState::stalled : WriterState::alive;
}

}  // namespace

std::vector<Segment> scan(const OpenOptions& opt) {
  std::vector<Segment> out;
  if (!valid_instance(opt.instance)) return out;
  DIR* d = ::opendir(paths::instance_dir(opt.shm_dir, opt.instance).c_str());
  if (!d) return out;
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(d)) {
    // '@' files (registry, lock, segments being created) are not series.
    if (paths::is_segment_name(e->d_name)) names.emplace_back(e->d_name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (auto& n : names) {
    std::string path = series_path(opt, n);
    out.push_back(open_path(opt, std::move(n), std::move(path)));
  }
  return out;
}

std::optional<std::string> access_problem(const OpenOptions& opt) {
  struct stat st {};
  if (::stat(opt.shm_dir.c_str(), &st) != 0)
    return fmt::format("--shm-dir {}: {}", opt.shm_dir, std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) return fmt::format("--shm-dir {}: not a directory", opt.shm_dir);
  const std::string dir = paths::instance_dir(opt.shm_dir, opt.instance);
  if (::stat(dir.c_str(), &st) != 0 || ::access(dir.c_str(), R_OK | X_OK) == 0 || errno != EACCES) return std::nullopt;
  const group* g = ::getgrgid(st.st_gid);
  const std::string name = g ? g->gr_name : std::to_string(st.st_gid);
  return fmt::format("{}: permission denied: readers must be in group '{}' (sudo adduser $USER {}, then log in again)",
                     dir, name, name);
}

std::vector<std::string> other_instances(const OpenOptions& opt) {
  std::vector<std::string> out;
  DIR* d = ::opendir(opt.shm_dir.c_str());
  if (!d) return out;
  const std::string_view prefix = kSegmentPrefix;
  while (const dirent* e = ::readdir(d)) {
    const std::string_view name = e->d_name;
    if (name.size() <= prefix.size() || name.substr(0, prefix.size()) != prefix) continue;
    const std::string_view instance = name.substr(prefix.size());
    if (!valid_instance(instance) || instance == opt.instance) continue;  // also skips "x@registry" files
    struct stat st {};
    if (::stat((opt.shm_dir + "/" + std::string(name)).c_str(), &st) == 0 && S_ISDIR(st.st_mode))
      out.emplace_back(instance);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

Segment open_segment(const OpenOptions& opt, std::string_view series) {
  if (!valid_series_id(series)) {
    Segment seg;
    seg.series = std::string(series);
    seg.error = Errc::invalid_argument;
    seg.error_text = "invalid series id (1-31 of [a-z0-9_])";
    return seg;
  }
  return open_path(opt, std::string(series), series_path(opt, series));
}

std::vector<std::string> registered_series(const OpenOptions& opt) {
  // The daemon's manifest in the consumers directory: bounded read, every line validated.
  std::vector<std::string> out;
  const std::string path = consumers_dir(opt) + "/" + std::string(kSeriesManifestName);
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return out;
  struct stat st {};
  std::string text(kSeriesManifestMax, '\0');
  const ssize_t n = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? ::pread(fd, text.data(), text.size(), 0) : -1;
  ::close(fd);
  text.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t end = std::min(text.find('\n', pos), text.size());
    const std::string_view id(text.data() + pos, end - pos);
    if (valid_series_id(id)) out.emplace_back(id);
    pos = end + 1;
  }
  return out;
}

Status status_of(Series& s) {
  Status st;
  const SegmentHeader& h = s.header();
  st.symbol = std::string(s.symbol());
  st.interval_s = s.interval_s();
  st.capacity = s.capacity();
  st.head = s.head();
  st.bars = s.size();
  st.updates = s.updates();
  st.generation = s.generation();
  st.amends = load_field(h.amends);
  st.writer_pid = load_field(h.writer_pid);
  st.writer = exact_writer_state(s);
  st.update_age_s = seconds_of(s.update_age());
  st.heartbeat_age_s = seconds_of(s.heartbeat_age());
  st.layout_major = load_field(h.layout_major);
  st.layout_minor = load_field(h.layout_minor);
  st.exchange_offset_ms = exchange_offset_ms(h);
  auto stat = [&h](Stat which) { return load_field(h.stats[static_cast<std::size_t>(which)]); };
  const auto store_state = stat(Stat::store_state);
  st.store_state = store_state <= static_cast<std::uint64_t>(StoreState::unavailable) ? static_cast<StoreState>(store_state)
                                                                                      : StoreState::unavailable;
  st.store_pending_bars = stat(Stat::store_pending_bars);
  st.store_write_errors = stat(Stat::store_write_errors);
  st.store_last_errno = stat(Stat::store_last_errno);
  st.has_latest = s.latest(st.latest, &st.latest_index) == Errc::ok;
  std::vector<Bar> recent(std::min<std::size_t>(kRecentBars, st.capacity));
  if (s.last_n(recent, st.recent_bars) == Errc::ok)
    for (std::size_t i = 0; i < st.recent_bars; ++i) st.recent_not_repaired += (recent[i].flags & flag::not_repaired) != 0;
  return st;
}

std::string_view to_string(Health h) {
  switch (h) {
    case Health::ok: return "ok";
    case Health::stale: return "stale";
    case Health::failed: return "fail";
  }
  return "fail";
}

void judge(const Segment& seg, const Status* st, double max_age_s, std::int64_t now, std::vector<Problem>& out) {
  auto add = [&](Health h, std::string why) { out.push_back({h, seg.series, std::move(why)}); };
  if (!seg.handle || !st) {
    if (seg.error == Errc::not_ready) add(Health::stale, "segment not ready (writer initialising, or died while creating it)");
    else if (seg.error == Errc::not_found) add(Health::failed, "missing: no segment " + seg.path);
    else if (seg.error == Errc::invalid_argument) add(Health::failed, seg.error_text);
    else add(Health::failed, "incompatible segment " + seg.path + ": " + seg.error_text);
    return;
  }
  if (st->writer == WriterState::dead) {
    add(Health::failed, fmt::format("writer pid {} is dead (or the host rebooted since it wrote)", st->writer_pid));
    return;
  }
  // The writer heartbeats every 50 ms whatever the market does. One rule for list, check and the
  // client: no heartbeat for kHeartbeatDeadline means stalled (a stopped or hung daemon).
  if (st->writer == WriterState::stalled)
    add(Health::stale, fmt::format("writer pid {} alive but no heartbeat for {} (limit {}): stalled, stopped or hung",
                                   st->writer_pid, age_text(st->heartbeat_age_s),
                                   age_text(std::chrono::duration<double>(kHeartbeatDeadline).count())));
  // The data is live but not persisted: a restart now would have to refill it from REST.
  if (st->store_state == StoreState::failing || st->store_state == StoreState::unavailable) {
    const char* name = st->store_last_errno ? ::strerrorname_np(static_cast<int>(st->store_last_errno)) : nullptr;
    add(Health::failed,
        fmt::format("history store {} (last error {}, {} failure(s)); {} closed bar(s) not on disk yet",
                    st->store_state == StoreState::failing ? "failing" : "unavailable",
                    name ? name : fmt::format("errno {}", st->store_last_errno), st->store_write_errors,
                    st->store_pending_bars));
  }
  if (!st->has_latest) {
    add(Health::stale, "no bar published yet");
    return;
  }
  // The bar in progress must cover now: bars close on time even without trades, so a newest bar
  // whose interval ended more than max_age ago means the series stopped (a 1d series included).
  const std::int64_t bar_end = st->latest.open_time_ms + std::int64_t{st->interval_s} * 1000;
  // On the source's clock: a replay of 2022 data is current when its bars follow the replay.
  const double behind_s = static_cast<double>(now + st->exchange_offset_ms - bar_end) / 1000.0;
  if (behind_s > max_age_s)
    add(Health::stale, fmt::format("newest bar opened {}; its interval ended {} ago", iso_time_ms(st->latest.open_time_ms),
                                   age_text(behind_s)));
  // A series is published at least once per interval (the flat bar of a quiet interval), so for
  // intervals longer than max_age silence up to interval + max_age is normal.
  const double update_limit = st->interval_s < max_age_s ? max_age_s : st->interval_s + max_age_s;
  if (st->update_age_s > update_limit)
    add(Health::stale, fmt::format("no update for {} (limit {})", age_text(st->update_age_s), age_text(update_limit)));
  // Fresh but incomplete: a gap REST could not fill yet (the daemon reconciles those bars with the
  // exchange's klines as soon as REST answers again).
  if (st->recent_not_repaired)
    add(Health::stale, fmt::format("{} of the newest {} bars flagged not_repaired: a gap not filled from REST yet",
                                   st->recent_not_repaired, st->recent_bars));
}

std::string age_problem(double s) {
  if (!std::isfinite(s)) return "must be a finite number of seconds";
  if (s <= 0) return "must be more than 0 seconds";
  if (s > kMaxAgeLimitS) return fmt::format("must be at most {} seconds (30 days)", kMaxAgeLimitS);
  return {};
}

Health worst(const std::vector<Problem>& ps) {
  Health h = Health::ok;
  for (const auto& p : ps) h = std::max(h, p.severity);
  return h;
}

std::vector<ConsumerRow> consumers_of(const OpenOptions& opt, std::string_view series, std::uint64_t head,
                                      Errc* registry_error, ConsumerListing* listing) {
  ConsumerListing all;
  const Errc e = list_consumers(opt, all);
  if (registry_error) *registry_error = e;
  std::vector<ConsumerRow> out;
  for (auto& c : all.consumers)
    if (c.series_id == series) out.push_back({c, head > c.cursor ? head - c.cursor : 0});
  if (listing) {
    listing->invalid = all.invalid;
    listing->complete = all.complete;
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.info.name < b.info.name; });
  return out;
}

// ---- formatting ----------------------------------------------------------------------------

std::string iso_time_ms(std::int64_t ms) {
  std::int64_t sec = ms / 1000, rem = ms % 1000;
  if (rem < 0) {
    rem += 1000;
    --sec;
  }
  const time_t t = static_cast<time_t>(sec);
  tm u{};
  if (!::gmtime_r(&t, &u)) return fmt::format("{}ms", ms);
  auto s = fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", u.tm_year + 1900, u.tm_mon + 1, u.tm_mday, u.tm_hour,
                       u.tm_min, u.tm_sec);
  if (rem != 0) s += fmt::format(".{:03}", rem);
  return s + "Z";
}

std::string iso_time_ns(std::uint64_t ns) { return iso_time_ms(static_cast<std::int64_t>(ns / 1'000'000)); }

std::string interval_name(std::uint32_t s) {
  if (s == 0) return "0s";
  if (s % 604800 == 0) return fmt::format("{}w", s / 604800);
  if (s % 86400 == 0) return fmt::format("{}d", s / 86400);
  if (s % 3600 == 0) return fmt::format("{}h", s / 3600);
  if (s % 60 == 0) return fmt::format("{}m", s / 60);
  return fmt::format("{}s", s);
}

std::vector<std::string_view> flag_list(std::uint32_t f) {
  static constexpr std::pair<std::uint32_t, std::string_view> names[] = {
      {flag::in_progress, "in_progress"}, {flag::closed, "closed"},         {flag::empty, "empty"},
      {flag::backfilled, "backfilled"},   {flag::reconciled, "reconciled"}, {flag::not_repaired, "not_repaired"},
      {flag::reconcile_diff, "reconcile_diff"}, {flag::from_store, "from_store"}};
  std::vector<std::string_view> out;
  for (const auto& [bit, name] : names)
    if (f & bit) out.push_back(name);
  if (f & ~flag::all) out.push_back("unknown");
  return out;
}

std::string flag_names(std::uint32_t f, char sep) {
  std::string s;
  for (auto n : flag_list(f)) {
    if (!s.empty()) s += sep;
    s += n;
  }
  return s.empty() ? "-" : s;
}

std::string age_text(double s) {
  if (!std::isfinite(s) || s < 0) return "-";
  if (s < 10) return fmt::format("{:.2f}s", s);
  const auto t = static_cast<std::uint64_t>(s);
  if (t < 60) return fmt::format("{}s", t);
  if (t < 3600) return fmt::format("{}m{:02}s", t / 60, t % 60);
  if (t < 86400) return fmt::format("{}h{:02}m", t / 3600, t % 3600 / 60);
  return fmt::format("{}d{:02}h", t / 86400, t % 86400 / 3600);
}

std::int64_t now_ms() { return static_cast<std::int64_t>(detail::wall_ns() / 1'000'000); }

std::optional<std::uint64_t> latency_percentile_ns(const SegmentHeader& h, double q) {
  std::uint64_t counts[kLatencyBuckets];
  std::uint64_t total = 0;
  for (std::size_t b = 0; b < kLatencyBuckets; ++b) total += counts[b] = load_field(h.latency_hist[b]);
  if (total == 0) return std::nullopt;
  const auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total)));
  std::uint64_t seen = 0;
  for (std::size_t b = 0; b < kLatencyBuckets; ++b) {
    seen += counts[b];
    if (seen >= std::max<std::uint64_t>(rank, 1)) return std::uint64_t{1} << (b + 1);
  }
  return std::uint64_t{1} << kLatencyBuckets;
}

}  // namespace mdshm::inspect
