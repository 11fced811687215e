#!/usr/bin/env bash
# Build the benchmarks (Release) and run them, tee-ing the tables into a results file.
#
#   scripts/bench.sh                    # everything: bench_shm (5 rounds) then bench_e2e
#   scripts/bench.sh spin reads         # some of bench_shm: spin futex reads fanout memory
#   scripts/bench.sh latency            # some of bench_e2e: latency resources (or e2e = both)
#   scripts/bench.sh -- --quick         # arguments after -- go to bench_shm as they are
#   E2E_ARGS="--rounds 1 --seconds 5 --resource-seconds 20" scripts/bench.sh e2e   # a quick e2e run
#
# Environment: BUILD_DIR (default build-bench), RESULTS (default $BUILD_DIR/bench-results-<time>.md),
# CMAKE_ARGS (extra configure arguments), E2E_ARGS (extra bench_e2e arguments). bench_e2e needs
# mdshmd and mdshm-sim from the same build and the kline CSVs in $MDSHM_KLINES (default
# /work/shared/data/binance/klines). Results are only meaningful on a quiet machine: each program
# prints the load average first.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build-bench}"
[[ "$build" = /* ]] || build="$root/$build"
klines="${MDSHM_KLINES:-/work/shared/data/binance/klines}"

shm_benches=()
e2e_benches=()
passthrough=()
while (($#)); do
  case "$1" in
    --) shift; passthrough=("$@"); break ;;
    spin|futex|reads|fanout|memory) shm_benches+=("$1") ;;
    latency|resources) e2e_benches+=("$1") ;;
    e2e) e2e_benches+=(all) ;;
    all) shm_benches+=(all); e2e_benches+=(all) ;;
    *) echo "bench.sh: unknown bench '$1' (spin futex reads fanout memory latency resources e2e all)" >&2; exit 2 ;;
  esac
  shift
done
if ((${#shm_benches[@]} == 0 && ${#e2e_benches[@]} == 0)); then shm_benches=(all); e2e_benches=(all); fi

generator=()
if [[ ! -f "$build/CMakeCache.txt" ]] && command -v ninja >/dev/null; then generator=(-G Ninja); fi
# GCC 12 at -O3 reports false -Wrestrict warnings in std::string code (GCC bug 105329; url.cpp now
# avoids the one we hit); keep the class a warning in the Release bench build all the same.
# shellcheck disable=SC2086  # CMAKE_ARGS is a list of words on purpose
cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS=-Wno-error=restrict \
  ${CMAKE_ARGS:-} >/dev/null
cmake --build "$build" --target bench_shm bench_e2e mdshmd mdshm-sim -j"$(nproc)"

results="${RESULTS:-$build/bench-results-$(date +%Y%m%d-%H%M%S).md}"
: >"$results"
echo "load average before the run: $(cat /proc/loadavg)  (2 cores: anything above ~0.5 will show in the tails)"
cd "$root"
if ((${#shm_benches[@]})); then
  "$build/bin/bench_shm" "${shm_benches[@]}" --daemon "$build/bin/mdshmd" --config "$root/config/synthetic.toml" \
    "${passthrough[@]}" | tee -a "$results"
fi
if ((${#e2e_benches[@]})); then
  # shellcheck disable=SC2086  # E2E_ARGS is a list of words on purpose
  "$build/bin/bench_e2e" "${e2e_benches[@]}" --bin "$build/bin" --klines "$klines" ${E2E_ARGS:-} | tee -a "$results"
fi
echo
echo "results: $results"
