#!/usr/bin/env bash
# Live detection, side by side with the docker CLI: `openshell-runtime detect` (release build,
# Docker driver, against dockerd's socket) versus `docker info` on the same engine.
# Goal (docs/performance.md): at most 0.7x docker info's median wall time, at most 15 MiB peak
# memory. Needs dockerd running (scripts/engines.sh) and hyperfine + GNU time (Debian packages
# `hyperfine` and `time`). Reports; never fails on the numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
sock=${1:-/var/run/docker.sock}
runs=${RUNS:-40}
cargo build -q --release -p openshell-runtime-cli
bin=target/release/openshell-runtime
net=openshell-bench-detect
detect="$bin detect --no-config --driver docker --endpoint unix://$sock --network $net -o json"
$detect >/dev/null  # creates the sandbox network once, as a gateway's first start would
trap 'docker -H unix://$sock network rm $net >/dev/null 2>&1 || true' EXIT
hyperfine --warmup 3 --runs "$runs" --style basic --export-json target/live-detect.json \
  -n "openshell-runtime detect" "$detect" \
  -n "docker info" "docker -H unix://$sock info --format '{{json .}}'"
python3 - <<'PY'
import json
r = {x["command"]: x for x in json.load(open("target/live-detect.json"))["results"]}
a, b = r["openshell-runtime detect"]["median"], r["docker info"]["median"]
print(f"median: detect {a*1000:.1f} ms, docker info {b*1000:.1f} ms, ratio {a/b:.2f}x (goal <= 0.70x)")
PY
peak() { /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident set size/ {print $2}'; }
kb=$(peak $detect)
dk=$(peak docker -H "unix://$sock" info --format '{{json .}}')
echo "peak RSS: detect $((kb / 1024)) MiB ($kb KiB, goal <= 15 MiB), docker info $((dk / 1024)) MiB ($dk KiB)"
