// Which files may be trusted: the rules the writer applies before it re-attaches a file and every
// reader applies before it maps one. A file is trusted as written by `writer` only if it is a
// regular file (not a symlink, FIFO, device), owned by `writer`, and nobody else may write it.
// Shared by mdshmd and the client so both sides say the same thing in the same words.
#pragma once

#include <pwd.h>
#include <cstdio>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace mdshm::platform {

// "uid 1001 (mallory)", or "uid 1001" when the account has no name.
inline std::string describe_uid(uid_t uid) {
  std::string out = "uid " + std::to_string(uid);
  std::vector<char> buf(1024);
  passwd pw{};
  passwd* found = nullptr;
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found && found->pw_name)
    out += std::string(" (") + found->pw_name + ")";
  return out;
}

// Why the file `st` describes must not be trusted as written only by `writer`; empty if it may.
// `want_dir`: the file must be a directory (the instance directory) instead of a regular file.
inline std::string untrusted_reason(const struct stat& st, uid_t writer, bool want_dir = false) {
  if (S_ISLNK(st.st_mode)) return "a symbolic link";
  if (want_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
    return want_dir ? "not a directory" : "not a regular file";
  if (st.st_uid != writer)
    return "owned by " + describe_uid(st.st_uid) + ", not by the writer " + describe_uid(writer);
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return std::string("writable by ") + ((st.st_mode & S_IWOTH) ? "everyone" : "its group") + " (mode " + mode + ")";
  }
  return {};
}

}  // namespace mdshm::platform
