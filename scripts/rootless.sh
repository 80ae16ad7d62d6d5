#!/usr/bin/env bash
# Sets up the rootless engines for the live tests: an unprivileged user with subordinate id
# ranges, a user-readable /dev/net/tun and its own XDG_RUNTIME_DIR, then that user's Podman API
# service and that user's rootless dockerd (RootlessKit). Idempotent: an engine that already
# answers is left alone. Prints the two socket paths on stdout.
#
# Both engines are configured so that 10.0.2.2 inside their containers reaches the host's
# loopback: the one rootless route the tests may prove (the other reaches the host's LAN-facing
# address, which tests must not send traffic to).
# - Podman: slirp4netns' allow_host_loopback, in the user's containers.conf.
# - Docker: DOCKERD_ROOTLESS_ROOTLESSKIT_DISABLE_HOST_LOOPBACK=false for dockerd-rootless.sh
#   (its default passes --disable-host-loopback to RootlessKit).
set -euo pipefail
# The daemons keep the working directory they start in: from a CI clone that is later deleted
# (or, for the rootless user, one it cannot enter) Podman fails every container (conmon cannot
# get its cwd: "write child: broken pipe").
cd /
user=openshell-rootless
log() { printf 'rootless: %s\n' "$*" >&2; }

if ! command -v rootlesskit >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || { log "rootlesskit is missing and not root: apt-get install rootlesskit"; exit 1; }
  log "installing rootlesskit"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rootlesskit >/dev/null
fi
# Debian ships the rootless launcher with docker.io, outside PATH.
launcher_dir=/usr/share/docker.io/contrib
[ -x "$launcher_dir/dockerd-rootless.sh" ] || { log "no $launcher_dir/dockerd-rootless.sh: is docker.io installed?"; exit 1; }

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
# Written by openshell-runtime's scripts/rootless.sh for its live tests.
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
network_cmd_options = ["allow_host_loopback=true"]
CONF
chown -R "$user:$user" "$home/.config"

as_user() { runuser -u "$user" -- env HOME="$home" XDG_RUNTIME_DIR="$runtime_dir" PATH="$launcher_dir:/usr/sbin:/usr/bin:/sbin:/bin" "$@"; }
answers() { curl -fsS --max-time 2 --unix-socket "$1" http://d/_ping >/dev/null 2>&1; }
wait_for() { # socket, log file, name
  local i
  for i in $(seq 1 60); do answers "$1" && return 0; sleep 0.5; done
  log "$3 did not answer on $1 within 30s"
  tail -20 "$2" >&2
  return 1
}

podman_socket=$runtime_dir/podman/podman.sock
if ! answers "$podman_socket"; then
  log "starting the rootless podman service for $user"
  as_user podman system migrate >/dev/null 2>&1 || true
  as_user setsid nohup podman system service --time=0 "unix://$podman_socket" \
    > /var/log/openshell-podman-rootless.log 2>&1 < /dev/null &
  wait_for "$podman_socket" /var/log/openshell-podman-rootless.log "rootless podman"
fi

# dockerd without systemd in a user session: the cgroupfs driver (it then sets no resource
# limits, which the tests do not need).
docker_socket=$runtime_dir/docker.sock
if ! answers "$docker_socket"; then
  log "starting rootless dockerd for $user"
  as_user DOCKERD_ROOTLESS_ROOTLESSKIT_DISABLE_HOST_LOOPBACK=false \
    DOCKERD_ROOTLESS_ROOTLESSKIT_FLAGS=--disable-host-loopback=false \
    setsid nohup dockerd-rootless.sh --exec-opt native.cgroupdriver=cgroupfs \
    > /var/log/openshell-dockerd-rootless.log 2>&1 < /dev/null &
  wait_for "$docker_socket" /var/log/openshell-dockerd-rootless.log "rootless dockerd"
fi
echo "$podman_socket"
echo "$docker_socket"
