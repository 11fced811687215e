// Test helpers: run a command and capture its output and exit code; start the synthetic writer
// as a child process; remove an instance's files from /dev/shm.
#pragma once

#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace mdshm::test {

struct RunResult {
  int exit_code = -1;
  std::string out;
};

// Runs `cmd` through /bin/sh; captures stdout (stderr too when merge_stderr).
inline RunResult run(const std::string& cmd, bool merge_stderr = false) {
  RunResult r;
  FILE* p = ::popen((cmd + (merge_stderr ? " 2>&1" : "")).c_str(), "r");
  if (!p) throw std::runtime_error("popen failed: " + cmd);
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = ::pclose(p);
  r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  return r;
}

inline std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// The synthetic writer (tests/inspector/synthetic_writer.cpp) as a child; killed with SIGKILL and
// reaped when this object goes away.
class WriterProcess {
 public:
  WriterProcess(const std::string& exe, std::vector<std::string> args) {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe");
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork");
    if (pid_ == 0) {
      ::dup2(fds[1], STDOUT_FILENO);
      ::close(fds[0]);
      ::close(fds[1]);
      std::vector<char*> argv{const_cast<char*>(exe.c_str())};
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(exe.c_str(), argv.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    FILE* f = ::fdopen(fds[0], "r");
    char line[128] = {};
    const bool ok = std::fgets(line, sizeof line, f) != nullptr && std::string(line).rfind("ready", 0) == 0;
    std::fclose(f);
    if (!ok) {
      stop(SIGKILL);
      throw std::runtime_error("synthetic writer did not start: " + exe);
    }
  }
  ~WriterProcess() { stop(SIGKILL); }
  WriterProcess(const WriterProcess&) = delete;
  WriterProcess& operator=(const WriterProcess&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int sig) const {
    if (pid_ > 0) ::kill(pid_, sig);
  }
  // Sends sig and reaps the child (so it is not a zombie that still looks alive).
  void stop(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGCONT);
    ::kill(pid_, sig);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

inline void remove_instance_files(const std::string& instance, const std::string& dir = "/dev/shm") {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  const std::string a = "mdshm." + instance + ".", b = "mdshm." + instance + "@";
  std::vector<std::string> doomed;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.rfind(a, 0) == 0 || name.rfind(b, 0) == 0) doomed.push_back(dir + "/" + name);
  }
  ::closedir(d);
  std::error_code ec;  // @consumers is a directory
  for (auto& p : doomed) std::filesystem::remove_all(p, ec);
}

struct InstanceCleanup {
  std::string instance;
  ~InstanceCleanup() { remove_instance_files(instance); }
};

inline std::string unique_instance(const char* tag) {
  static int n = 0;
  return std::string("t") + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(++n);
}

inline void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

}  // namespace mdshm::test
