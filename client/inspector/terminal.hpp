// Full-screen mode for `mdshm watch`: keys read unbuffered without echo, the alternate screen, the
// cursor hidden — and all of it undone on every way out: normal return, exception, and the
// signals that would otherwise kill us with the terminal in raw mode (SIGINT, SIGTERM, SIGHUP,
// SIGQUIT; Ctrl-C itself arrives as a key because ISIG is off).
#pragma once

#include <termios.h>

#include <chrono>
#include <string_view>

namespace mdshm::inspect {

// Stop flag set by SIGINT/SIGTERM/SIGHUP/SIGQUIT once install_stop_signals() ran. The handlers are
// installed without SA_RESTART, so a blocking poll() returns at once.
void install_stop_signals();
bool stop_requested();
// Sleeps up to `d`, returning early when a stop signal arrives.
void sleep_unless_stopped(std::chrono::milliseconds d);

class FullScreen {
 public:
  FullScreen();   // stdin and stdout must be terminals
  ~FullScreen();  // restores the saved termios and the normal screen
  FullScreen(const FullScreen&) = delete;
  FullScreen& operator=(const FullScreen&) = delete;

  // Waits up to `timeout` for a key; returns it, or -1 on timeout or signal.
  int read_key(std::chrono::milliseconds timeout);
  // Replaces the screen content with `frame` (lines separated by '\n') in one write.
  void draw(std::string_view frame);
  int columns() const;

 private:
  termios saved_{};
  bool active_ = false;
};

}  // namespace mdshm::inspect
