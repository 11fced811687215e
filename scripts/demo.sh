#!/usr/bin/env bash
# The main job, end to end on this machine: build, start mdshmd on instance "demo", and show the
# five series live with the inspector until Ctrl-C. Without a terminal it prints one plain line
# per series per second instead (DEMO_SECONDS=N stops it after N seconds).
#
#   scripts/demo.sh              # synthetic trades (no network needed)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

"$root/scripts/bootstrap.sh"
echo "== building (build/)"
configure_and_build "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -- mdshmd mdshm >/dev/null
bin="$root/build/bin"
instance=demo
workdir="$(mktemp -d /tmp/mdshm-demo.XXXXXX)"
config="$root/config/synthetic.toml"

pids=()
cleanup() {
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  echo "demo stopped; daemon log: $workdir/mdshmd.log (segments stay in /dev/shm/mdshm.$instance.*)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== starting mdshmd --config ${config#$root/} --instance $instance"
"$bin/mdshmd" --config "$config" --instance "$instance" >"$workdir/mdshmd.log" 2>&1 &
pids+=($!)

# Wait until the five series are up (the inspector's check exits 0 when all are healthy).
for _ in $(seq 1 100); do
  "$bin/mdshm" check --instance "$instance" --max-age 5 >/dev/null 2>&1 && break
  kill -0 "${pids[0]}" 2>/dev/null || { cat "$workdir/mdshmd.log"; exit 1; }
  sleep 0.1
done
"$bin/mdshm" list --instance "$instance"

if [[ -t 1 && -t 0 && -z "${DEMO_SECONDS:-}" ]]; then
  "$bin/mdshm" watch --instance "$instance"
else
  # No terminal: the inspector's watch prints plain lines itself; bound it if asked.
  if [[ -n "${DEMO_SECONDS:-}" ]]; then
    timeout --foreground "$DEMO_SECONDS" "$bin/mdshm" watch --instance "$instance" </dev/null || true
  else
    "$bin/mdshm" watch --instance "$instance" </dev/null
  fi
fi
