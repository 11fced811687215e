// Plays systemd's side of the notify protocol: a datagram socket whose address goes into
// NOTIFY_SOCKET, either a path or an abstract name ("@name").
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>

namespace mdshm::test {

class NotifyListener {
 public:
  // abstract = true: bind to "\0<name>" and expose it as "@<name>"; else a socket file in a
  // fresh temp directory.
  explicit NotifyListener(bool abstract, const std::string& tag = "n") {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string unique = "mdshm_notify_" + tag + "_" + std::to_string(::getpid());
    socklen_t len = 0;
    if (abstract) {
      address_ = "@" + unique;
      std::memcpy(addr.sun_path + 1, unique.data(), unique.size());
      len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + unique.size());
    } else {
      dir_ = std::filesystem::temp_directory_path() / unique;
      std::filesystem::create_directories(dir_);
      address_ = (dir_ / "notify.sock").string();
      std::filesystem::remove(address_);
      std::memcpy(addr.sun_path, address_.data(), address_.size());
      len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address_.size() + 1);
    }
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0)
      throw std::runtime_error("bind " + address_ + ": " + std::strerror(errno));
  }
  ~NotifyListener() {
    ::close(fd_);
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }
  NotifyListener(const NotifyListener&) = delete;
  NotifyListener& operator=(const NotifyListener&) = delete;

  const std::string& address() const { return address_; }

  // The next datagram, or nullopt after `timeout`.
  std::optional<std::string> receive(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) return std::nullopt;
    return std::string(buf, static_cast<std::size_t>(n));
  }

 private:
  int fd_ = -1;
  std::filesystem::path dir_;
  std::string address_;
};

// Sets an environment variable for a scope, restoring the previous value (or its absence).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) ::setenv(name_, old_->c_str(), 1);
    else ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

}  // namespace mdshm::test
