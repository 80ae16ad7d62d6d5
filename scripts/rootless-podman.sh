#!/usr/bin/env bash
# Sets up rootless Podman for the live tests: an unprivileged user with subordinate id ranges, a
# user-readable /dev/net/tun, its own XDG_RUNTIME_DIR, and its own Podman API service.
# Idempotent. Prints the service's socket path on stdout.
#
# The user's containers.conf turns on slirp4netns' allow_host_loopback, so that 10.0.2.2 inside
# its containers reaches the host's loopback: the one rootless route the tests may prove (the
# other reaches the host's LAN-facing address, which tests must not send traffic to).
set -euo pipefail
user=openshell-rootless
log() { printf 'rootless-podman: %s\n' "$*" >&2; }

id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$user"
uid=$(id -u "$user")
grep -q "^$user:" /etc/subuid 2>/dev/null || echo "$user:200000:65536" >> /etc/subuid
grep -q "^$user:" /etc/subgid 2>/dev/null || echo "$user:200000:65536" >> /etc/subgid
[ -e /dev/net/tun ] || { mkdir -p /dev/net; mknod /dev/net/tun c 10 200; }
chmod 0666 /dev/net/tun

runtime_dir=/run/user/$uid
mkdir -p "$runtime_dir/podman"
chown -R "$user:$user" "$runtime_dir"
chmod 0700 "$runtime_dir"

home=$(getent passwd "$user" | cut -d: -f6)
conf_dir=$home/.config/containers
mkdir -p "$conf_dir"
cat > "$conf_dir/containers.conf" <<CONF
# Written by openshell-runtime's scripts/rootless-podman.sh for its live tests.
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
network_cmd_options = ["allow_host_loopback=true"]
CONF
chown -R "$user:$user" "$home/.config"

socket=$runtime_dir/podman/podman.sock
as_user() { runuser -u "$user" -- env HOME="$home" XDG_RUNTIME_DIR="$runtime_dir" "$@"; }
if ! curl -fsS --max-time 2 --unix-socket "$socket" http://d/_ping >/dev/null 2>&1; then
  log "starting the rootless podman service for $user"
  as_user podman system migrate >/dev/null 2>&1 || true
  as_user setsid nohup podman system service --time=0 "unix://$socket" > "/var/log/openshell-podman-rootless.log" 2>&1 < /dev/null &
  for _ in $(seq 1 60); do
    curl -fsS --max-time 2 --unix-socket "$socket" http://d/_ping >/dev/null 2>&1 && break
    sleep 0.5
  done
  curl -fsS --max-time 2 --unix-socket "$socket" http://d/_ping >/dev/null 2>&1 || { log "service did not start"; tail -20 /var/log/openshell-podman-rootless.log >&2; exit 1; }
fi
echo "$socket"
