#!/usr/bin/env bash
# Installs (when missing) and starts the two engines the live tests use: Debian's dockerd and
# Podman's API service. Idempotent: an engine that already answers is left alone.
#
# Quirks of these machines, handled here on purpose:
# - cgroups are in hybrid mode, where crun refuses to start containers: Podman is told to use runc.
# - the hard open-files limit is 20000, below Podman's default container ulimits: set them to fit.
set -euo pipefail
# The daemons keep the working directory they start in: from a CI clone that is later deleted
# (or, for the rootless user, one it cannot enter) Podman fails every container (conmon cannot
# get its cwd: "write child: broken pipe").
cd /

log() { printf 'engines: %s\n' "$*" >&2; }

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
command -v podman >/dev/null 2>&1 || need_pkgs+=(podman)
command -v runc >/dev/null 2>&1 || need_pkgs+=(runc)
[ -x /bin/busybox ] && busybox --list 2>/dev/null | grep -qx nc || need_pkgs+=(busybox-static)
command -v slirp4netns >/dev/null 2>&1 || need_pkgs+=(slirp4netns)
command -v newuidmap >/dev/null 2>&1 || need_pkgs+=(uidmap)
command -v curl >/dev/null 2>&1 || need_pkgs+=(curl)
command -v runuser >/dev/null 2>&1 || need_pkgs+=(util-linux)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    log "missing packages ${need_pkgs[*]} and not root: install them with apt-get"
    exit 1
  fi
  log "installing ${need_pkgs[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# Podman: runc and ulimits that fit under this machine's hard limits.
# Podman lowers its own limits at start-up (seen: nproc 32768 for a service started under a
# 96365 hard limit) and then fails to give containers more ("error setting rlimit type 6").
# Sandboxes need few processes and files, so ask for modest limits that fit everywhere.
mkdir -p /etc/containers/containers.conf.d
conf=/etc/containers/containers.conf.d/50-openshell-tests.conf
old_conf=$(cat "$conf" 2>/dev/null || true)
cat > "$conf" <<CONF
# Written by openshell-runtime's scripts/engines.sh for its live tests.
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]

[engine]
runtime = "runc"
CONF
[ "$old_conf" = "$(cat "$conf")" ] || conf_changed=1

wait_for_socket() { # path, name
  local i
  for i in $(seq 1 60); do
    if curl -fsS --max-time 2 --unix-socket "$1" http://d/_ping >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  log "$2 did not answer on $1 within 30s"
  return 1
}

if ! curl -fsS --max-time 2 --unix-socket /var/run/docker.sock http://d/_ping >/dev/null 2>&1; then
  log "starting dockerd"
  mkdir -p /var/log
  nohup dockerd >/var/log/openshell-dockerd.log 2>&1 &
  wait_for_socket /var/run/docker.sock dockerd || { tail -20 /var/log/openshell-dockerd.log >&2; exit 1; }
fi

if [ "${conf_changed:-0}" = 1 ] && pgrep -f "podman system service" >/dev/null; then
  log "containers.conf changed: restarting the podman service"
  pkill -f "podman system service" || true
  sleep 1
fi
if ! curl -fsS --max-time 2 --unix-socket /run/podman/podman.sock http://d/_ping >/dev/null 2>&1; then
  log "starting podman system service"
  mkdir -p /run/podman
  nohup podman system service --time=0 unix:///run/podman/podman.sock >/var/log/openshell-podman.log 2>&1 &
  wait_for_socket /run/podman/podman.sock podman || { tail -20 /var/log/openshell-podman.log >&2; exit 1; }
fi
log "dockerd and podman are up"
