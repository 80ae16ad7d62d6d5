#!/usr/bin/env bash
# A "remote" machine for the live tests of remote engines (issue 14), made on this host: a
# network namespace `openshell-remote` joined to the host by a veth pair, and inside it a second
# dockerd reachable over tcp:// with TLS, a Podman API service (rootful, its own storage and
# network configuration) reachable over tcp:// with TLS, and an sshd (key auth only) through
# which the tests reach that dockerd (`docker system dial-stdio`) and both engines' sockets
# (forwarded).
#
#   bash scripts/remote.sh up     # idempotent: what already runs is left alone
#   bash scripts/remote.sh down   # stops everything, removes the namespace, links and dirs
#   bash scripts/remote.sh env    # prints the settings the tests read (also in $RUN/env)
#
# Addresses: the first /16 of 10.214.0.0/16, 10.215.0.0/16, 10.216.0.0/16, 10.217.0.0/16 that
# overlaps no route and no address of this host (checked with `ip route` and `ip addr`; `up`
# refuses when all collide). Inside the chosen X.Y.0.0/16:
#   X.Y.0.0/30    the veth pair: X.Y.0.1 on the host (osr-host), X.Y.0.2 in the namespace
#   X.Y.1.0/24    the namespaced dockerd's default bridge (--bip)
#   X.Y.2.0/24    the namespaced Podman's default network (osr-podman)
#   X.Y.64.0/18   the address pool of networks created on the dockerd (/24 each)
#   X.Y.128.0/18  the address pool of networks created on Podman (/24 each)
# The namespace has no default route: it reaches the host's veth address and nothing else, and
# no route leads to this host's loopback (another machine's containers cannot reach it either).
#
# The namespaced dockerd keeps its own paths (--data-root, --exec-root, under which 20.10
# starts its own containerd, --pidfile, --config-file, a cgroup parent) so that it cannot
# disturb this host's engines; its iptables rules live in the namespace's own tables. Its
# unix socket sits in a private (0700) directory and is used only by sshd sessions
# (DOCKER_HOST set by sshd's SetEnv), as `docker system dial-stdio` on a remote machine would.
#
# The namespaced Podman (4.3, CNI) keeps its own --root, --runroot, --tmpdir and network
# configuration directory, and reads only its own containers.conf (CONTAINERS_CONF): runc (crun
# refuses this hybrid-cgroup host), cgroupfs, file events, and a default network and subnet
# pool of its own. Its network names are unique to it, so the IPAM state CNI keeps in
# /var/lib/cni/networks/<name> (shared with this host's Podman) cannot collide; `down` removes
# the directories of its networks. The service runs from `/`: a service whose working directory
# is gone fails every container start with "write child: broken pipe". Podman serves TLS itself
# only from 5.7 (`system service --tls-cert --tls-key --tls-client-ca`); Debian 12's 4.3 cannot,
# so stunnel terminates TLS in front of its socket the same way (the test CA's server
# certificate, client certificates required and verified against the CA), on the port
# containers.conf(5)'s TLS example uses. Not socat: with client verification on, socat 1.7.4
# fails every resumed TLS session ("session id context uninitialized").
#
# Every wait is bounded. Run as root. Talks to nothing but what it creates.
set -euo pipefail
cd /

NS=openshell-remote
VETH_HOST=osr-host
VETH_NS=osr-ns
RUN=/run/openshell-remote
DATA=/var/lib/openshell-remote
DOCKER_TCP_PORT=2376
PODMAN_TLS_PORT=9443
SSH_PORT=2222
CANDIDATES=(10.214 10.215 10.216 10.217)

log() { printf 'remote: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root"

# --- addresses ------------------------------------------------------------------------------

ip2int() { local IFS=.; local -a o; read -r -a o <<<"$1"; echo $(((o[0] << 24) | (o[1] << 16) | (o[2] << 8) | o[3])); }

# Whether prefix $1 (a.b.c.d/len) overlaps prefix $2.
overlaps() {
  local a=${1%/*} al=${1#*/} b=${2%/*} bl=${2#*/}
  [ "$al" = "$1" ] && al=32
  [ "$bl" = "$2" ] && bl=32
  local l=$((al < bl ? al : bl))
  local mask=$(((0xffffffff << (32 - l)) & 0xffffffff))
  [ $(($(ip2int "$a") & mask)) -eq $(($(ip2int "$b") & mask)) ]
}

# Every IPv4 prefix this host routes or holds (our own veth excluded, so `up` stays idempotent).
host_prefixes() {
  ip -4 route show table all 2>/dev/null | grep -v "dev $VETH_HOST" |
    awk '{ p = $1; if (p == "default" || p == "broadcast" || p == "local" || p == "unicast") p = $2; if (p == "default") next; print p }' |
    grep -E '^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+(/[0-9]+)?$' || true
  ip -4 -o addr show 2>/dev/null | grep -v " $VETH_HOST " | awk '{ print $4 }' || true
}

choose_base() {
  local base p taken
  local prefixes
  prefixes=$(host_prefixes | sort -u)
  for base in "${CANDIDATES[@]}"; do
    taken=
    for p in $prefixes; do
      # The 0.0.0.0/0 default route overlaps everything and is no collision.
      [ "${p#*/}" = 0 ] && continue
      if overlaps "$base.0.0/16" "$p"; then taken=$p; break; fi
    done
    if [ -z "$taken" ]; then echo "$base"; return 0; fi
    log "$base.0.0/16 collides with $taken on this host"
  done
  return 1
}

# --- packages -------------------------------------------------------------------------------

install_packages() {
  local need=()
  command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
  command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
  command -v openssl >/dev/null 2>&1 || need+=(openssl)
  command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
  command -v curl >/dev/null 2>&1 || need+=(curl)
  command -v stunnel >/dev/null 2>&1 || need+=(stunnel4)
  command -v ip >/dev/null 2>&1 || need+=(iproute2)
  if [ "${#need[@]}" -gt 0 ]; then
    log "installing ${need[*]}"
    apt-get update -qq
    # Debian's postinst would start sshd on port 22 for the whole network: services are kept
    # from starting while the packages install (the usual policy-rc.d), then left as they were.
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; made_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
      { [ "$made_policy" = 1 ] && rm -f "$policy"; die "installing ${need[*]} failed"; }
    [ "$made_policy" = 1 ] && rm -f "$policy"
  fi
  return 0
}

# --- pieces ---------------------------------------------------------------------------------

# nsenter rather than `ip netns exec`: the latter also mounts a fresh /sys, which hides the
# cgroup hierarchies dockerd needs ("Devices cgroup isn't mounted" on this hybrid-cgroup host).
in_ns() { nsenter --net="/run/netns/$NS" -- "$@"; }

wait_until() { # seconds, description, pid (0: none), command...
  local secs=$1 what=$2 pid=$3 i
  shift 3
  for i in $(seq 1 $((secs * 4))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if [ "$pid" != 0 ] && ! kill -0 "$pid" 2>/dev/null; then
      log "$what exited"
      return 1
    fi
    sleep 0.25
  done
  log "$what did not come up within ${secs}s"
  return 1
}

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

network_up() {
  local base=$1
  if ! ip netns list | grep -qw "$NS"; then
    ip netns add "$NS"
  fi
  in_ns ip link set lo up
  if ! ip link show "$VETH_HOST" >/dev/null 2>&1; then
    ip link add "$VETH_HOST" type veth peer name "$VETH_NS"
    ip link set "$VETH_NS" netns "$NS"
  fi
  ip addr replace "$base.0.1/30" dev "$VETH_HOST"
  ip link set "$VETH_HOST" up
  in_ns ip addr replace "$base.0.2/30" dev "$VETH_NS"
  in_ns ip link set "$VETH_NS" up
}

tls_up() {
  local ns_ip=$1 dir=$RUN/tls
  [ -s "$dir/client/key.pem" ] && [ -s "$dir/server/cert.pem" ] && return 0
  mkdir -p "$dir/ca" "$dir/server" "$dir/client"
  chmod 700 "$dir" "$dir/ca"
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${ec[@]}" -days 2 -subj "/CN=openshell-remote test CA" \
    -keyout "$dir/ca/key.pem" -out "$dir/ca/cert.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  sign() { # name, subject, extensions
    openssl req "${ec[@]}" -subj "$2" -keyout "$dir/$1/key.pem" -out "$dir/$1/req.pem" 2>/dev/null
    printf '%s\n' "$3" >"$dir/$1/ext.cnf"
    openssl x509 -req -in "$dir/$1/req.pem" -CA "$dir/ca/cert.pem" -CAkey "$dir/ca/key.pem" \
      -CAcreateserial -days 2 -extfile "$dir/$1/ext.cnf" -out "$dir/$1/cert.pem" 2>/dev/null
    rm -f "$dir/$1/req.pem" "$dir/$1/ext.cnf"
    cp "$dir/ca/cert.pem" "$dir/$1/ca.pem"
  }
  sign server "/CN=$ns_ip" "subjectAltName=IP:$ns_ip
extendedKeyUsage=serverAuth
keyUsage=critical,digitalSignature"
  # The client directory is what DOCKER_CERT_PATH names: ca.pem, cert.pem, key.pem.
  sign client "/CN=openshell-remote test client" "extendedKeyUsage=clientAuth
keyUsage=critical,digitalSignature"
  chmod 600 "$dir"/*/key.pem
}

dockerd_up() {
  local base=$1 ns_ip=$1.0.2 pidfile=$RUN/docker.pid sock=$RUN/docker/docker.sock
  if pid_alive "$pidfile" && curl -fsS --max-time 2 --unix-socket "$sock" http://d/_ping >/dev/null 2>&1; then
    return 0
  fi
  mkdir -p "$RUN/docker" "$RUN/exec" "$DATA/docker"
  chmod 700 "$RUN/docker" "$RUN/exec" "$DATA"
  # An empty configuration, so /etc/docker/daemon.json (this host's engine's) is not read.
  echo '{}' >"$RUN/daemon.json"
  log "starting the namespaced dockerd"
  # nsenter itself, not the in_ns function: a function run in the background is a forked shell
  # that keeps this script's stdout open for as long as dockerd runs (`remote.sh up | tail`
  # would never end), and $! would be that shell, not dockerd.
  nsenter --net="/run/netns/$NS" -- dockerd \
    --config-file "$RUN/daemon.json" \
    --data-root "$DATA/docker" \
    --exec-root "$RUN/exec" \
    --pidfile "$pidfile" \
    --cgroup-parent openshell-remote \
    --exec-opt native.cgroupdriver=cgroupfs \
    --bip "$base.1.1/24" \
    --default-address-pool "base=$base.64.0/18,size=24" \
    -H "unix://$sock" \
    -H "tcp://$ns_ip:$DOCKER_TCP_PORT" \
    --tlsverify \
    --tlscacert "$RUN/tls/server/ca.pem" \
    --tlscert "$RUN/tls/server/cert.pem" \
    --tlskey "$RUN/tls/server/key.pem" \
    >"$RUN/dockerd.log" 2>&1 </dev/null &
  wait_until 60 "the namespaced dockerd" $! curl -fsS --max-time 2 --unix-socket "$sock" http://d/_ping ||
    { tail -20 "$RUN/dockerd.log" >&2; return 1; }
}

sshd_up() {
  local ns_ip=$1.0.2 dir=$RUN/ssh pidfile=$RUN/sshd.pid
  mkdir -p "$dir" /run/sshd
  chmod 700 "$dir"
  [ -s "$dir/host_key" ] || ssh-keygen -q -t ed25519 -N '' -C openshell-remote-host -f "$dir/host_key"
  [ -s "$dir/client_key" ] || ssh-keygen -q -t ed25519 -N '' -C openshell-remote-client -f "$dir/client_key"
  cp "$dir/client_key.pub" "$dir/authorized_keys"
  chmod 600 "$dir/authorized_keys"
  printf '[%s]:%s %s\n' "$ns_ip" "$SSH_PORT" "$(cut -d' ' -f1,2 "$dir/host_key.pub")" >"$dir/known_hosts"
  cat >"$dir/sshd_config" <<CONF
# Written by openshell-runtime's scripts/remote.sh: the namespaced test machine's sshd.
ListenAddress $ns_ip:$SSH_PORT
HostKey $dir/host_key
PidFile $pidfile
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# sshd denies streamlocal (Unix socket) forwards unless local TCP forwarding is allowed too
# (and PermitOpen none would deny them as well); only the tests' key gets in.
AllowTcpForwarding local
AllowAgentForwarding no
X11Forwarding no
AllowStreamLocalForwarding local
PermitTTY no
# Sessions are the remote machine's: its docker CLI talks to the namespaced dockerd.
SetEnv DOCKER_HOST=unix://$RUN/docker/docker.sock
CONF
  # What the tests' ssh client uses (ssh -F): this key, this host key, nothing of ~/.ssh.
  cat >"$dir/client_config" <<CONF
# Written by openshell-runtime's scripts/remote.sh for the live tests (ssh -F).
Host $ns_ip
  Port $SSH_PORT
  User root
  IdentityFile $dir/client_key
  IdentitiesOnly yes
  UserKnownHostsFile $dir/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 5
CONF
  if pid_alive "$pidfile"; then
    # Reread the configuration written above.
    kill -HUP "$(cat "$pidfile")"
    return 0
  fi
  /usr/sbin/sshd -t -f "$dir/sshd_config"
  log "starting the namespaced sshd"
  in_ns /usr/sbin/sshd -f "$dir/sshd_config" -E "$RUN/sshd.log"
  wait_until 20 "the namespaced sshd" 0 \
    ssh -F "$dir/client_config" "$ns_ip" -- true
}

podman_up() {
  local base=$1 pidfile=$RUN/podman.pid sock=$RUN/podman/podman.sock
  if pid_alive "$pidfile" && curl -fsS --max-time 2 --unix-socket "$sock" http://d/_ping >/dev/null 2>&1; then
    return 0
  fi
  command -v podman >/dev/null 2>&1 || die "podman is not installed (scripts/engines.sh installs it)"
  command -v runc >/dev/null 2>&1 || die "runc is not installed (scripts/engines.sh installs it)"
  mkdir -p "$RUN/podman/runroot" "$RUN/podman/tmp" "$RUN/podman/networks" "$DATA/podman/root"
  chmod 700 "$RUN/podman" "$DATA/podman"
  cat >"$RUN/podman/containers.conf" <<CONF
# Written by openshell-runtime's scripts/remote.sh: the namespaced test machine's Podman.
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$RUN/podman/events.log"

[network]
network_backend = "cni"
network_config_dir = "$RUN/podman/networks"
default_network = "osr-podman"
default_subnet = "$base.2.0/24"
default_subnet_pools = [{"base" = "$base.128.0/18", "size" = 24}]
CONF
  log "starting the namespaced podman service"
  rm -f "$sock"
  # nsenter itself (not the in_ns function, which would run in a forked shell that keeps a
  # copy of this script's stdout open), so that $! is the service, which nsenter and env exec.
  nsenter --net="/run/netns/$NS" -- env CONTAINERS_CONF="$RUN/podman/containers.conf" podman \
    --root "$DATA/podman/root" --runroot "$RUN/podman/runroot" --tmpdir "$RUN/podman/tmp" \
    --network-config-dir "$RUN/podman/networks" --cgroup-manager cgroupfs --events-backend file \
    system service --time=0 "unix://$sock" >"$RUN/podman.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  wait_until 60 "the namespaced podman service" "$(cat "$pidfile")" \
    curl -fsS --max-time 2 --unix-socket "$sock" http://d/_ping ||
    { tail -20 "$RUN/podman.log" >&2; return 1; }
}

# TLS in front of the namespaced Podman's socket (what `podman system service --tls-cert ...
# --tls-client-ca ...` does from Podman 5.7 on). A connection without a client certificate the
# test CA signed is refused in the handshake.
podman_tls_up() {
  local ns_ip=$1.0.2 pidfile=$RUN/podman-tls.pid dir=$RUN/tls
  local check=(curl -fsS --max-time 2 --cacert "$dir/client/ca.pem" --cert "$dir/client/cert.pem"
    --key "$dir/client/key.pem" "https://$ns_ip:$PODMAN_TLS_PORT/_ping")
  if pid_alive "$pidfile" && "${check[@]}" >/dev/null 2>&1; then
    return 0
  fi
  stop_pidfile "$pidfile" "podman's TLS terminator" 5
  cat >"$RUN/podman-tls.conf" <<CONF
; Written by openshell-runtime's scripts/remote.sh: TLS in front of the namespaced Podman.
foreground = yes
syslog = no
output = $RUN/podman-tls.log
[podman]
accept = $ns_ip:$PODMAN_TLS_PORT
connect = $RUN/podman/podman.sock
cert = $dir/server/cert.pem
key = $dir/server/key.pem
CAfile = $dir/server/ca.pem
verifyChain = yes
requireCert = yes
CONF
  log "starting the TLS terminator of the namespaced podman service"
  # nsenter itself, as for the service, so that $! is stunnel.
  nsenter --net="/run/netns/$NS" -- stunnel "$RUN/podman-tls.conf" >/dev/null 2>&1 </dev/null &
  echo $! >"$pidfile"
  wait_until 20 "podman's TLS terminator" "$(cat "$pidfile")" "${check[@]}" ||
    { tail -20 "$RUN/podman-tls.log" >&2; return 1; }
}

podman_down() {
  [ -s "$RUN/podman/containers.conf" ] || return 0
  local base d
  base=$(cat "$RUN/base" 2>/dev/null || true)
  # Its containers first, while the service still runs their cleanup (bounded).
  if pid_alive "$RUN/podman.pid"; then
    timeout 60 podman --url "unix://$RUN/podman/podman.sock" rm -af -t 0 >/dev/null 2>&1 || true
  fi
  stop_pidfile "$RUN/podman-tls.pid" "podman's TLS terminator" 5
  stop_pidfile "$RUN/podman.pid" "podman service" 15
  # CNI's host-local IPAM keeps /var/lib/cni/networks/<name> after `network rm` (Podman 4.3),
  # shared with this host's Podman: ours are the ones that handed out addresses of our /16,
  # which no network of this host overlaps.
  [ -n "$base" ] || return 0
  for d in /var/lib/cni/networks/*/; do
    if grep -qs "^${base//./\\.}\\." "$d"last_reserved_ip.*; then
      rm -rf "$d"
    fi
  done
}

write_env() {
  local base=$1 ns_ip=$1.0.2
  cat >"$RUN/env" <<ENV
OPENSHELL_REMOTE_NS=$NS
OPENSHELL_REMOTE_ADDR=$ns_ip
OPENSHELL_REMOTE_HOST_ADDR=$base.0.1
OPENSHELL_REMOTE_DOCKER_TCP=tcp://$ns_ip:$DOCKER_TCP_PORT
OPENSHELL_REMOTE_DOCKER_CERT_PATH=$RUN/tls/client
OPENSHELL_REMOTE_DOCKER_SSH=ssh://root@$ns_ip:$SSH_PORT
OPENSHELL_REMOTE_DOCKER_SOCKET=$RUN/docker/docker.sock
OPENSHELL_REMOTE_SSH_CONFIG=$RUN/ssh/client_config
OPENSHELL_REMOTE_PODMAN_SOCKET=$RUN/podman/podman.sock
OPENSHELL_REMOTE_PODMAN_SSH=ssh://root@$ns_ip:$SSH_PORT$RUN/podman/podman.sock
OPENSHELL_REMOTE_PODMAN_TLS=tcp://$ns_ip:$PODMAN_TLS_PORT
ENV
}

# --- up / down ------------------------------------------------------------------------------

up() {
  install_packages
  local base
  if [ -s "$RUN/base" ]; then
    base=$(cat "$RUN/base")
  else
    base=$(choose_base) || die "every candidate range (${CANDIDATES[*]/%/.0.0\/16}) collides with this host's networks; edit CANDIDATES in $0"
  fi
  mkdir -p "$RUN"
  chmod 755 "$RUN"
  echo "$base" >"$RUN/base"
  network_up "$base"
  tls_up "$base.0.2"
  dockerd_up "$base"
  podman_up "$base"
  podman_tls_up "$base"
  sshd_up "$base"
  write_env "$base"
  log "up: dockerd on tcp://$base.0.2:$DOCKER_TCP_PORT (TLS), podman on tcp://$base.0.2:$PODMAN_TLS_PORT (TLS), both sockets over ssh://root@$base.0.2:$SSH_PORT, in namespace $NS"
}

stop_pidfile() { # pidfile, name, seconds
  local pidfile=$1 name=$2 secs=$3 pid i
  pid_alive "$pidfile" || return 0
  pid=$(cat "$pidfile")
  log "stopping $name ($pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 $((secs * 4))); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.25
  done
  log "$name did not stop within ${secs}s: killing it"
  kill -KILL "$pid" 2>/dev/null || true
}

down() {
  podman_down
  stop_pidfile "$RUN/sshd.pid" sshd 5
  # dockerd stops its containers and its containerd itself.
  stop_pidfile "$RUN/docker.pid" dockerd 30
  # A containerd left by a killed dockerd (its pidfile is under the exec root).
  stop_pidfile "$RUN/exec/containerd/containerd.pid" containerd 10
  # Whatever else still runs in the namespace (container processes of a killed engine).
  if ip netns list | grep -qw "$NS"; then
    local pids
    pids=$(ip netns pids "$NS" 2>/dev/null || true)
    if [ -n "$pids" ]; then
      log "killing what still runs in $NS: $(echo $pids)"
      kill -KILL $pids 2>/dev/null || true
      sleep 0.5
    fi
  fi
  # Mounts dockerd left under its roots (overlay layers, netns files).
  local m
  for m in $(awk '{ print $2 }' /proc/self/mounts | grep -E "^($RUN|$DATA)/" | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  ip link del "$VETH_HOST" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$RUN" "$DATA"
  # The namespaced dockerd's iptables rules went with the namespace; the host got none.
  log "down"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  env) cat "$RUN/env" ;;
  *) die "usage: $0 up|down|env" ;;
esac
