#include "terminal.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <stdexcept>
#include <string>

namespace mdshm::inspect {

namespace {

volatile std::sig_atomic_t g_stop = 0;
// The termios to restore from a signal handler if the process dies before the destructor runs
// (a second signal while the first is being handled). tcsetattr is async-signal-safe.
termios g_saved{};
volatile std::sig_atomic_t g_raw = 0;

constexpr std::string_view kEnter = "\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J";  // alternate screen, hide cursor
constexpr std::string_view kLeave = "\x1b[?25h\x1b[?1049l";               // show cursor, normal screen

void write_all(std::string_view s) {
  while (!s.empty()) {
    const ssize_t n = ::write(STDOUT_FILENO, s.data(), s.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    s.remove_prefix(static_cast<std::size_t>(n));
  }
}

void on_signal(int) {
  if (g_stop && g_raw) {  // second signal: the loop did not get out; restore and die now
    ::tcsetattr(STDIN_FILENO, TCSANOW, &g_saved);
    (void)!::write(STDOUT_FILENO, kLeave.data(), kLeave.size());
    ::_exit(130);
  }
  g_stop = 1;
}

}  // namespace

void install_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: poll() and sleeps return EINTR
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) ::sigaction(sig, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // `mdshm watch | head`: a write error ends the loop, not a signal
}

bool stop_requested() { return g_stop != 0; }

void sleep_unless_stopped(std::chrono::milliseconds d) {
  const auto deadline = std::chrono::steady_clock::now() + d;
  while (!stop_requested()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return;
    ::poll(nullptr, 0, static_cast<int>(left.count()));
  }
}

FullScreen::FullScreen() {
  if (::tcgetattr(STDIN_FILENO, &saved_) != 0) throw std::runtime_error("watch: stdin is not a terminal");
  termios raw = saved_;
  raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO | ISIG | IEXTEN);
  raw.c_iflag &= ~static_cast<tcflag_t>(IXON | ICRNL);
  raw.c_cc[VMIN] = 0;
  raw.c_cc[VTIME] = 0;
  g_saved = saved_;
  if (::tcsetattr(STDIN_FILENO, TCSANOW, &raw) != 0) throw std::runtime_error("watch: cannot set raw mode");
  g_raw = 1;
  active_ = true;
  write_all(kEnter);
}

FullScreen::~FullScreen() {
  if (!active_) return;
  write_all(kLeave);
  ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  g_raw = 0;
}

int FullScreen::read_key(std::chrono::milliseconds timeout) {
  pollfd p{STDIN_FILENO, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return -1;
  unsigned char c = 0;
  return ::read(STDIN_FILENO, &c, 1) == 1 ? c : -1;
}

void FullScreen::draw(std::string_view frame) {
  // Home, then each line followed by clear-to-end-of-line, then clear below: no flicker, no
  // leftovers when a line gets shorter.
  std::string out = "\x1b[H";
  std::size_t start = 0;
  while (start <= frame.size()) {
    const auto end = frame.find('\n', start);
    out.append(frame.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    out += "\x1b[K";
    if (end == std::string_view::npos) break;
    out += "\r\n";
    start = end + 1;
  }
  out += "\x1b[J";
  write_all(out);
}

int FullScreen::columns() const {
  winsize ws{};
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

}  // namespace mdshm::inspect
