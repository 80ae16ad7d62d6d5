#!/usr/bin/env bash
# Remote detection, side by side with the docker CLI (issue 25): `openshell-runtime detect`
# (release build, Docker driver) versus `docker info` on the same engine, the namespaced dockerd
# of scripts/remote.sh, over tcp:// with TLS and over ssh:// (`docker system dial-stdio` on the
# remote side, for both), plus the local socket against one `curl` of `/info` (the floor).
# Goals (docs/performance.md): TLS <= 1.0x, ssh <= 1.0x, local <= 1.05x the yardstick's median
# wall time. Both tools reach ssh through the same wrapper that names the remote engine's ssh
# client configuration (the docker CLI has no flag for it). Needs `scripts/remote.sh up`,
# dockerd (scripts/engines.sh), hyperfine and curl. Reports; never fails on the numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-15}
env_file=/run/openshell-remote/env
[ -r "$env_file" ] || { echo "$env_file missing: run scripts/remote.sh up" >&2; exit 1; }
# shellcheck disable=SC1090
. "$env_file"
cargo build -q --release -p openshell-runtime-cli
bin=$PWD/target/release/openshell-runtime
work=$(mktemp -d)
net=openshell-bench-remote-detect
cleanup() {
  for h in "$OPENSHELL_REMOTE_DOCKER_TCP"; do
    docker -H "$h" --tlsverify --tlscacert "$certs/ca.pem" --tlscert "$certs/cert.pem" \
      --tlskey "$certs/key.pem" network rm "$net" >/dev/null 2>&1 || true
  done
  docker -H unix:///var/run/docker.sock network rm "$net" >/dev/null 2>&1 || true
  rm -rf "$work"
}
certs=$OPENSHELL_REMOTE_DOCKER_CERT_PATH
trap cleanup EXIT
mkdir -p "$work/bin"
cat >"$work/bin/ssh" <<EOF
#!/bin/sh
exec /usr/bin/ssh -F $OPENSHELL_REMOTE_SSH_CONFIG "\$@"
EOF
chmod +x "$work/bin/ssh"
export PATH="$work/bin:$PATH" HOME="$work"
tls_flags="--tlsverify --tlscacert $certs/ca.pem --tlscert $certs/cert.pem --tlskey $certs/key.pem"
detect="$bin detect --no-config --driver docker --network $net -o json"
tls_detect="$detect --endpoint $OPENSHELL_REMOTE_DOCKER_TCP --tls-ca $certs/ca.pem --tls-cert $certs/cert.pem --tls-key $certs/key.pem"
ssh_detect="$detect --endpoint $OPENSHELL_REMOTE_DOCKER_SSH"
local_detect="$detect --endpoint unix:///var/run/docker.sock"
# The sandbox network once, as a gateway's first start makes it.
for d in "$tls_detect" "$ssh_detect" "$local_detect"; do $d >/dev/null; done
run() {
  local name=$1 ours=$2 theirs_name=$3 theirs=$4
  hyperfine -N --warmup 2 --runs "$runs" --style basic --export-json "$work/result.json" \
    -n "detect" "$ours" -n "$theirs_name" "$theirs" >/dev/null
  python3 - "$work/result.json" "$name" "$theirs_name" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
a, b = r["detect"]["median"], r[sys.argv[3]]["median"]
print(f"| {sys.argv[2]} | {a*1000:.1f} ms | {sys.argv[3]} {b*1000:.1f} ms | {a/b:.2f}x |")
PY
}
echo "| transport | detect (median of $runs) | yardstick | ratio |"
echo "|---|---|---|---|"
# The local floor first: ssh sessions ending in the background (the remote docker CLIs of
# dial-stdio) would load the machine while the local detection runs.
run "unix socket" "$local_detect" "curl /info" "curl -s --unix-socket /var/run/docker.sock -o /dev/null http://docker/info"
run "tcp:// TLS" "$tls_detect" "docker info" "docker -H $OPENSHELL_REMOTE_DOCKER_TCP $tls_flags info --format {{.ID}}"
run "ssh:// dial-stdio" "$ssh_detect" "docker info" "docker -H $OPENSHELL_REMOTE_DOCKER_SSH info --format {{.ID}}"
