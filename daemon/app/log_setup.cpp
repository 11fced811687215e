#include "app/log_setup.hpp"

#include <sys/stat.h>

#include <cstdlib>
#include <memory>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace mdshm::app {

namespace {

// The "%*" flag: "<N>" for the message's level.
class PriorityFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    // A syslog priority is one digit (0..7): no string to build per line (and none for GCC 12's
    // false -Wrestrict on std::string concatenation at -O3).
    const char p[3] = {'<', static_cast<char>('0' + syslog_priority(msg.level)), '>'};
    dest.append(p, p + sizeof p);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<PriorityFlag>(); }
};

}  // namespace

bool stderr_is_journal() {
  const char* js = std::getenv("JOURNAL_STREAM");
  if (js == nullptr) return false;
  struct stat st {};
  if (fstat(2, &st) != 0) return false;
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) == js;
}

int syslog_priority(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug: return 7;
    case spdlog::level::info: return 6;
    case spdlog::level::warn: return 4;
    case spdlog::level::err: return 3;
    case spdlog::level::critical: return 2;
    default: return 6;
  }
}

void setup_logging(spdlog::level::level_enum level) {
  auto logger = spdlog::stderr_color_mt("mdshmd");
  spdlog::set_default_logger(logger);
  spdlog::set_level(level);
  // The journal stamps each entry itself, but the line keeps its own stamp for `journalctl -o cat`.
  const bool journal = stderr_is_journal();
  auto f = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  f->add_flag<PriorityFlag>('*');
  f->set_pattern(journal ? "%*%Y-%m-%dT%H:%M:%S.%e%z %l [%P] %v" : "%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ [%P] %v");
  spdlog::set_formatter(std::move(f));
}

}  // namespace mdshm::app
