#!/usr/bin/env bash
# Build the benchmarks (Release) and run them, tee-ing the tables into a results file.
#
#   scripts/bench.sh                    # every bench, 5 rounds
#   scripts/bench.sh spin reads         # some of them: spin futex reads fanout memory
#   scripts/bench.sh -- --quick         # arguments after -- go to bench_shm as they are
#
# Environment: BUILD_DIR (default build-bench), RESULTS (default $BUILD_DIR/bench-results-<time>.md),
# CMAKE_ARGS (extra configure arguments). The daemon's RSS is measured when the build produced
# bin/mdshmd; otherwise the memory bench says so and measures a bare Publisher instead.
# Results are only meaningful on a quiet machine: the script prints the load average first.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build-bench}"
[[ "$build" = /* ]] || build="$root/$build"

benches=()
passthrough=()
while (($#)); do
  if [[ "$1" == "--" ]]; then
    shift
    passthrough=("$@")
    break
  fi
  benches+=("$1")
  shift
done

generator=()
if [[ ! -f "$build/CMakeCache.txt" ]] && command -v ninja >/dev/null; then generator=(-G Ninja); fi
# shellcheck disable=SC2086  # CMAKE_ARGS is a list of words on purpose
cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-} >/dev/null

targets=(bench_shm)
# mdshmd only if this configuration has it (a build limited to the core may not).
if cmake --build "$build" --target help 2>/dev/null | grep -q '^mdshmd:'; then targets+=(mdshmd); fi
cmake --build "$build" --target "${targets[@]}" -j"$(nproc)"

results="${RESULTS:-$build/bench-results-$(date +%Y%m%d-%H%M%S).md}"
echo "load average before the run: $(cat /proc/loadavg)  (2 cores: anything above ~0.5 will show in the tails)"
cd "$root"
"$build/bin/bench_shm" "${benches[@]}" --daemon "$build/bin/mdshmd" --config "$root/config/synthetic.toml" \
  "${passthrough[@]}" | tee "$results"
echo
echo "results: $results"
