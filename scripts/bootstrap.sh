#!/usr/bin/env bash
# Installs every Debian package the build, the tests and the demo need. Idempotent: when all are
# present it changes nothing and runs no apt command; otherwise one `apt-get update`, one install.
set -euo pipefail

packages=(
  g++ cmake ninja-build pkg-config git
  libboost-dev libboost-system-dev libssl-dev openssl ca-certificates
  libsimdjson-dev libspdlog-dev libfmt-dev libcli11-dev libtomlplusplus-dev catch2
  libsystemd-dev systemd tmux procps  # systemd: systemd-analyze verifies the unit in the tests
  python3-dev pybind11-dev python3-numpy python3-pytest  # the Python package and its tests
  python3-torch python3-matplotlib  # torch hand-over tests and examples; the PNG plot example
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "bootstrap: all ${#packages[@]} packages present"
  exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "bootstrap: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
echo "bootstrap: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
