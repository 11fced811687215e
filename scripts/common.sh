# Sourced by the scripts: the repository root, a generator, and a configure+build helper.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
jobs="$(nproc 2>/dev/null || echo 2)"

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)

# configure_and_build BUILD_DIR [cmake args...] -- [targets...]
configure_and_build() {
  local dir="$1"; shift
  local args=() targets=()
  while (($#)) && [[ "$1" != "--" ]]; do args+=("$1"); shift; done
  (($#)) && shift
  targets=("$@")
  if [[ ! -f "$dir/CMakeCache.txt" ]]; then
    cmake -S "$root" -B "$dir" "${generator[@]}" "${args[@]}"
  else
    cmake -S "$root" -B "$dir" "${args[@]}" >/dev/null
  fi
  if ((${#targets[@]})); then
    cmake --build "$dir" -j "$jobs" --target "${targets[@]}"
  else
    cmake --build "$dir" -j "$jobs"
  fi
}
