#!/usr/bin/env bash
# Debian 13 (trixie)'s container engines on this Debian 12 host, for the live tests of issue 21:
# Podman 5.4 (netavark + aardvark-dns) rootful, Podman 5.4 rootless with pasta for a user
# WITHOUT a systemd user session (an ssh-login-like user: no user bus) and for a user WITH one
# (systemd --user and a session bus), Docker 26.1 rootful, and Docker 26.1 rootless
# (RootlessKit; twice, in the same namespace: as shipped, and with host loopback). Nothing of trixie is installed on the host: its binaries run from a cached
# `mmdebstrap --variant=minbase trixie` root filesystem, pivoted into inside a private mount
# namespace per engine, each engine in a network namespace of its own.
#
#   bash scripts/engines-2026.sh up [E…]    # idempotent: what already answers is left alone
#   bash scripts/engines-2026.sh down       # stops everything, removes namespaces, links, dirs
#   bash scripts/engines-2026.sh env        # the settings the tests read (shell assignments)
#   bash scripts/engines-2026.sh check [E…] # the live proof recorded in docs/engines-2026.md
#
# Layout, per engine E (podman5, podman5-rootless, podman5-session, docker26, docker26-rootless):
# - A network namespace openshell-E (`ip netns`) whose only link besides lo is
#   "uplink0" holding the engine machine's "LAN" address X.Y.(10+k).2/24 with a default route
#   via X.Y.(10+k).1 (a veth whose peer, also in the namespace, has no address: this kernel
#   has no dummy links): whatever is sent there is dropped, so nothing the engine or its
#   containers send can leave the namespace (no registry, no DNS upstream, no host LAN), and
#   nothing of this host's networks (docker0, cni-podman0 10.88.0.0/16, its iptables/nftables
#   chains, its /run/netns handles of Podman 4) is visible to or touched by the engine. Its
#   firewall rules live and die with the namespace.
# - A holder process (`sleep infinity`) started as `nsenter --net=… unshare --mount
#   --propagation private` whose root is then pivoted (pivot_root, not chroot: a chrooted
#   process may not create user namespaces) to $DATA/E/root: an overlay of the cached root
#   filesystem (lower, never written) and $DATA/E/upper, mounted only inside that private mount
#   namespace, together with a fresh proc and sysfs, /sys/fs/cgroup and /dev (recursive binds,
#   private, inside the private namespace only), tmpfs /run and /tmp, and plain (non-recursive)
#   binds of the engine's own directories: storage and homes on ext4 under $DATA/E (overlay
#   storage cannot sit on the overlay root), and its socket directory $RUN/E. Everything of the
#   engine is started with `nsenter --target <holder> --mount --net --cgroup --root --wd`, so
#   it sees trixie's /, its own /run, and the namespace's network. Nothing is mounted in the
#   host's mount namespace except the `ip netns` handles; the host's /run is never bound.
# - Its processes are tracked in the pids cgroup openshell-2026/E (children inherit it). The
#   rootful engines also get a cgroup namespace rooted at openshell-2026/E in every hierarchy
#   (their containers' cgroups land there, not in the host's /libpod_parent or /docker).
#   `down` stops the engine through its API, then kills what is left in that cgroup and in the
#   network namespace, removes its cgroups, deletes the namespace, removes $RUN/E and $DATA/E.
#
# Addresses: the first of 10.226/16 … 10.229/16 that overlaps no route or address of this host
# (10.214-10.217 are scripts/remote.sh's). Inside X.Y.0.0/16, engine k (1..5):
#   X.Y.k.0/24          the engine's default bridge (podman0 / docker0)
#   X.Y.(10+k).0/24     the uplink of its namespace (host address .2, dead-end router .1)
#   X.Y.(32+32k).0/19   the pool of its user-defined networks (/24 each)
#
# Where a gateway must run so that the engine's containers reach it as on a native machine:
# `ip netns exec openshell-E …` (or nsenter --net=/run/netns/openshell-E), for every engine:
# that namespace is the engine's host. See docs/engines-2026.md for what was proven.
#
# Every wait is bounded. Run as root. Talks to nothing but Unix sockets, loopback and what it
# creates (and, for `up` without a cache, Debian's mirror through mmdebstrap).
set -euo pipefail
cd /

RUN=/run/openshell-2026
DATA=/var/lib/openshell-2026
CACHE=/var/cache/openshell-2026
ROOTFS=$CACHE/rootfs
CGROUP=/sys/fs/cgroup/pids/openshell-2026
MIRROR=http://deb.debian.org/debian
CANDIDATES=(10.226 10.227 10.228 10.229)
PACKAGES=podman,docker-cli,netavark,aardvark-dns,passt,runc,crun,conmon,catatonit,uidmap,slirp4netns,fuse-overlayfs,docker.io,rootlesskit,iptables,nftables,iproute2,busybox-static,curl,dbus,dbus-user-session,systemd,procps
# Engine name, index (addresses), rootless user (empty: rootful), uid.
ENGINES=(podman5 docker26 podman5-rootless podman5-session docker26-rootless)
declare -A IDX=([podman5]=1 [docker26]=2 [podman5-rootless]=3 [podman5-session]=4 [docker26-rootless]=5)
declare -A USERNAME=([podman5-rootless]=osh-podman [podman5-session]=osh-session [docker26-rootless]=osh-docker)
declare -A USERID=([podman5-rootless]=2026 [podman5-session]=2027 [docker26-rootless]=2028)

log() { printf 'engines-2026: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root"

# --- addresses (as scripts/remote.sh) -------------------------------------------------------

ip2int() { local IFS=.; local -a o; read -r -a o <<<"$1"; echo $(((o[0] << 24) | (o[1] << 16) | (o[2] << 8) | o[3])); }

overlaps() {
  local a=${1%/*} al=${1#*/} b=${2%/*} bl=${2#*/}
  [ "$al" = "$1" ] && al=32
  [ "$bl" = "$2" ] && bl=32
  local l=$((al < bl ? al : bl))
  local mask=$(((0xffffffff << (32 - l)) & 0xffffffff))
  [ $(($(ip2int "$a") & mask)) -eq $(($(ip2int "$b") & mask)) ]
}

# Every IPv4 prefix of this host's namespace (ours live in namespaces of their own).
host_prefixes() {
  ip -4 route show table all 2>/dev/null |
    awk '{ p = $1; if (p == "default" || p == "broadcast" || p == "local" || p == "unicast") p = $2; if (p == "default") next; print p }' |
    grep -E '^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+(/[0-9]+)?$' || true
  ip -4 -o addr show 2>/dev/null | awk '{ print $4 }' || true
}

choose_base() {
  local base p taken prefixes
  prefixes=$(host_prefixes | sort -u)
  for base in "${CANDIDATES[@]}"; do
    taken=
    for p in $prefixes; do
      [ "${p#*/}" = 0 ] && continue
      if overlaps "$base.0.0/16" "$p"; then taken=$p; break; fi
    done
    if [ -z "$taken" ]; then echo "$base"; return 0; fi
    log "$base.0.0/16 collides with $taken on this host"
  done
  return 1
}

# --- helpers --------------------------------------------------------------------------------

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
answers() { curl -fsS --max-time 3 --unix-socket "$1" http://d/_ping >/dev/null 2>&1; }

netns() { echo "openshell-$1"; }
holder_pid() { cat "$RUN/$1/holder.pid"; }

# Starts a command in the background inside the pids cgroup of engine $1 (so that `down` finds
# it and all its descendants); stdout and stderr to $2. Sets LAUNCHED to its pid.
launch() {
  local e=$1 out=$2
  shift 2
  sh -c 'for c in /sys/fs/cgroup/*/openshell-2026/"$1"/cgroup.procs; do echo $$ > "$c"; done; shift; exec "$@"' \
    sh "$e" "$@" >"$out" 2>&1 </dev/null &
  LAUNCHED=$!
}

# Runs a command inside engine $1's root, mount and network namespaces (as root).
in_engine() {
  local e=$1
  shift
  nsenter --target "$(holder_pid "$e")" --mount --net --cgroup --root --wd -- \
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
}

# Runs a command as the engine's rootless user, with its environment and no PAM session: the
# way an ssh login without a systemd user session looks (no DBUS_SESSION_BUS_ADDRESS, no
# $XDG_RUNTIME_DIR/bus), unless the session engine's bus exists.
as_user_argv() {
  local e=$1 u=${USERNAME[$1]} uid=${USERID[$1]}
  local extra=()
  if [ "$e" = podman5-session ]; then
    extra=(DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/$uid/bus)
  fi
  ARGV=(nsenter --target "$(holder_pid "$e")" --mount --net --cgroup --root --wd --
    setpriv --reuid "$uid" --regid "$uid" --init-groups --reset-env --
    env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin:/usr/share/docker.io/contrib
    HOME="/home/$u" USER="$u" LOGNAME="$u" LANG=C.UTF-8 XDG_RUNTIME_DIR="/run/user/$uid"
    "${extra[@]}")
}
as_user() {
  as_user_argv "$1"
  shift
  "${ARGV[@]}" "$@"
}

# --- the root filesystem ----------------------------------------------------------------------

rootfs_up() {
  if [ -s "$ROOTFS/.openshell-packages" ] && [ "$(cat "$ROOTFS/.openshell-packages")" = "$PACKAGES" ]; then
    return 0
  fi
  command -v mmdebstrap >/dev/null 2>&1 || {
    log "installing mmdebstrap (Debian 12's)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
  }
  # The cached root is the lower layer of every running engine's root: never replaced under one.
  local e
  for e in "${ENGINES[@]}"; do
    if pid_alive "$RUN/$e/holder.pid"; then die "$e runs on the cached root filesystem: run down first"; fi
  done
  log "building the trixie root filesystem in $ROOTFS (mmdebstrap)"
  mkdir -p "$CACHE"
  rm -rf "$ROOTFS.tmp"
  # In a private mount namespace: whatever mmdebstrap mounts (proc, sys, dev) cannot leak.
  unshare --mount --propagation private -- nice -n 10 mmdebstrap --mode=root --variant=minbase \
    --keyring=/usr/share/keyrings/debian-archive-keyring.gpg --include="$PACKAGES" \
    trixie "$ROOTFS.tmp" "$MIRROR" >"$CACHE/mmdebstrap.log" 2>&1 ||
    { tail -20 "$CACHE/mmdebstrap.log" >&2; die "mmdebstrap failed"; }
  echo "$PACKAGES" >"$ROOTFS.tmp/.openshell-packages"
  rm -rf "$ROOTFS"
  mv "$ROOTFS.tmp" "$ROOTFS"
}

# --- per engine: namespace, holder, users -----------------------------------------------------

netns_up() { # engine, base
  local e=$1 base=$2 ns k
  ns=$(netns "$e")
  k=${IDX[$e]}
  # `ip netns add` makes /run/netns a mount point when it is none: `down` undoes that (when no
  # namespace is left) only if this script made it.
  if ! mountpoint -q /run/netns && [ ! -e "$CACHE/made-run-netns" ]; then touch "$CACHE/made-run-netns"; fi
  ip netns list | grep -qx "$ns\( .*\)\?" || ip netns add "$ns"
  ip -n "$ns" link set lo up
  # This kernel has no dummy links: a veth pair with both ends in the namespace, the far end
  # without an address (nothing answers the router's ARP, nothing is forwarded).
  ip -n "$ns" link show uplink0 >/dev/null 2>&1 || ip -n "$ns" link add uplink0 type veth peer name deadend0
  ip -n "$ns" addr replace "$base.$((10 + k)).2/24" dev uplink0
  ip -n "$ns" link set deadend0 up
  ip -n "$ns" link set uplink0 up
  ip -n "$ns" route replace default via "$base.$((10 + k)).1" dev uplink0
}

holder_up() { # engine, base
  local e=$1 base=$2 d=$DATA/$1 r=$RUN/$1 k m
  k=${IDX[$e]}
  m=$d/root
  if pid_alive "$r/holder.pid"; then return 0; fi
  mkdir -p "$d/upper" "$d/work" "$m" "$d/storage" "$d/home" "$r"
  chmod 700 "$d"
  chmod 755 "$r"
  mkdir -p "$CGROUP/$e"
  local uid=${USERID[$e]:-}
  local runtime_bind=
  if [ -n "$uid" ]; then
    # The user's XDG_RUNTIME_DIR (/run/user/UID inside) is this host directory, so that its
    # sockets are reachable from the host.
    mkdir -p "$r/runtime"
    chown "$uid:$uid" "$r/runtime"
    chmod 700 "$r/runtime"
    runtime_bind="mkdir -p '$m/run/user/$uid' && mount --bind '$r/runtime' '$m/run/user/$uid'"
  fi
  local storage_bind="mkdir -p '$m/var/lib/containers' && mount --bind '$d/storage' '$m/var/lib/containers'"
  case $e in docker26*) storage_bind="mkdir -p '$m/var/lib/docker' && mount --bind '$d/storage' '$m/var/lib/docker'" ;; esac
  local systemd_marker=:
  # A systemd-booted machine (as Debian 13 is) has /run/systemd/system: netavark then starts
  # aardvark-dns with `systemd-run --scope [--user]`. The rootful engines run as on a machine
  # without systemd (no system manager runs here).
  case $e in podman5-rootless | podman5-session) systemd_marker="mkdir -p '$m/run/systemd/system'" ;; esac
  # The rootful engines get a cgroup namespace rooted at openshell-2026/E in every hierarchy,
  # with the hierarchies mounted afresh inside: Podman's cgroupfs parent (/libpod_parent, the
  # same as this host's Podman 4) and dockerd's become openshell-2026/E/… on the host, and
  # `down` removes that tree. (Rootless engines create no cgroups on cgroup v1; the session
  # engine's user manager gets its delegated subtree under openshell-2026/E as well.)
  local cgroupns= cgroup_mounts="mount --rbind /sys/fs/cgroup '$m/sys/fs/cgroup'" h name
  case $e in
    podman5 | docker26)
      cgroupns=--cgroup
      cgroup_mounts="mount -t tmpfs -o mode=755,nosuid,nodev,noexec tmpfs '$m/sys/fs/cgroup'"
      for h in $(cgroup_hierarchies); do
        name=${h%%:*}
        mkdir -p "/sys/fs/cgroup/$name/openshell-2026/$e"
        if [ "$name" = cpuset ]; then
          cat /sys/fs/cgroup/cpuset/cpuset.cpus >/sys/fs/cgroup/cpuset/openshell-2026/cpuset.cpus
          cat /sys/fs/cgroup/cpuset/cpuset.mems >/sys/fs/cgroup/cpuset/openshell-2026/cpuset.mems
          cat /sys/fs/cgroup/cpuset/cpuset.cpus >"/sys/fs/cgroup/cpuset/openshell-2026/$e/cpuset.cpus"
          cat /sys/fs/cgroup/cpuset/cpuset.mems >"/sys/fs/cgroup/cpuset/openshell-2026/$e/cpuset.mems"
        fi
        cgroup_mounts+="
    mkdir -p '$m/sys/fs/cgroup/$name'"
        if [ "$name" = unified ]; then
          cgroup_mounts+="
    mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 '$m/sys/fs/cgroup/unified'"
        else
          cgroup_mounts+="
    mount -t cgroup -o nosuid,nodev,noexec,${h#*:} cgroup '$m/sys/fs/cgroup/$name'"
        fi
      done
      cgroup_mounts+="
    mount -o remount,ro '$m/sys/fs/cgroup'" ;;
  esac
  log "$e: starting its namespace holder"
  # The holder: in the engine's network namespace, a private mount namespace where its root is
  # assembled, then pivoted into. Mounts made here exist only in that namespace and go with it.
  local join="echo \$\$ > '$CGROUP/$e/cgroup.procs'"
  [ -z "$cgroupns" ] || join="for c in /sys/fs/cgroup/*/openshell-2026/$e/cgroup.procs; do echo \$\$ > \$c; done"
  nsenter --net="/run/netns/$(netns "$e")" -- sh -c "$join && exec \"\$@\"" sh \
    unshare --mount $cgroupns --propagation private -- sh -ec "
    mount -t overlay overlay -o 'lowerdir=$ROOTFS,upperdir=$d/upper,workdir=$d/work' '$m'
    mount -t proc proc '$m/proc'
    mount -t sysfs sysfs '$m/sys'
    $cgroup_mounts
    mount --rbind /dev '$m/dev'
    mount -t tmpfs -o mode=755,nosuid,nodev tmpfs '$m/run'
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs '$m/tmp'
    mkdir -p '$m/run/lock' '$m/run/openshell-2026/$e'
    mount --bind '$r' '$m/run/openshell-2026/$e'
    $storage_bind
    mount --bind '$d/home' '$m/home'
    $runtime_bind
    $systemd_marker
    # pivot_root, not chroot: the kernel refuses user namespaces to a chrooted process
    # (rootless Podman: \"cannot clone: Operation not permitted\"). The old root is detached in
    # this private namespace only (every mount here is a private copy), and / is then made
    # shared as on a systemd machine, where rootless engines expect it: a new peer group,
    # local to this namespace and its children.
    cd '$m'
    mkdir -p .oldroot
    pivot_root . .oldroot
    cd /
    mount --make-rprivate /.oldroot
    umount -l /.oldroot
    rmdir /.oldroot
    mount --make-rshared /
    exec /bin/sleep infinity
  " >"$d/holder.log" 2>&1 </dev/null &
  echo $! >"$r/holder.pid"
  wait_until 20 "$e's holder" "$!" test -e "/proc/$!/root/.openshell-packages" || { cat "$d/holder.log" >&2; return 1; }
  # Its resolver: the dead-end router (nothing answers, nothing leaves).
  in_engine "$e" sh -c "echo 'nameserver $base.$((10 + k)).1' > /etc/resolv.conf"
  if [ -n "$uid" ]; then
    local u=${USERNAME[$e]}
    if ! in_engine "$e" id "$u" >/dev/null 2>&1; then
      in_engine "$e" groupadd -g "$uid" "$u"
      in_engine "$e" useradd -m -u "$uid" -g "$uid" -s /bin/sh "$u"
      in_engine "$e" sh -c "echo '$u:$((uid * 1000 + 1000000)):65536' >> /etc/subuid; echo '$u:$((uid * 1000 + 1000000)):65536' >> /etc/subgid"
    fi
  fi
}

# This host's cgroup hierarchies as name:mount-options (cpu:cpu, systemd:name=systemd, unified:).
cgroup_hierarchies() {
  awk '$3 == "cgroup" || $3 == "cgroup2" { n = $2; sub("^/sys/fs/cgroup/", "", n); o = ""
    k = split($4, opts, ","); for (i = 1; i <= k; i++) if (opts[i] !~ /^(rw|ro|nosuid|nodev|noexec|relatime)$/) o = o (o == "" ? "" : ",") opts[i]
    if ($2 ~ "^/sys/fs/cgroup/") print n ":" o }' /proc/self/mounts
}

# --- engines ------------------------------------------------------------------------------------

podman_conf() { # engine, base, cgroup manager
  local e=$1 base=$2 k=${IDX[$1]}
  cat <<CONF
# Written by openshell-runtime's scripts/engines-2026.sh.
[containers]
# Under this host's hard open-files limit (20000), as scripts/engines.sh.
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]

[engine]
# crun refuses to start containers on this hybrid-cgroup host (as with Podman 4).
runtime = "runc"
cgroup_manager = "$3"
events_logger = "file"

[network]
default_subnet = "$base.$k.0/24"
default_subnet_pools = [{"base" = "$base.$((32 + 32 * k)).0/19", "size" = 24}]
CONF
}

podman5_up() { # base
  local e=podman5 base=$1 sock=$RUN/podman5/podman.sock
  if pid_alive "$RUN/$e/service.pid" && answers "$sock"; then return 0; fi
  podman_conf "$e" "$base" cgroupfs | in_engine "$e" sh -c 'cat > /etc/containers/containers.conf'
  log "$e: starting podman system service"
  rm -f "$sock"
  launch "$e" "$DATA/$e/service.log" nsenter --target "$(holder_pid "$e")" --mount --net --cgroup --root --wd -- \
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    podman system service --time=0 "unix:///run/openshell-2026/$e/podman.sock"
  echo "$LAUNCHED" >"$RUN/$e/service.pid"
  wait_until 60 "$e" "$LAUNCHED" answers "$sock" || { tail -20 "$DATA/$e/service.log" >&2; return 1; }
}

podman5_rootless_up() { # engine, base
  local e=$1 base=$2 uid=${USERID[$1]} u=${USERNAME[$1]}
  local sock=$RUN/$e/runtime/podman/podman.sock
  if pid_alive "$RUN/$e/service.pid" && answers "$sock"; then return 0; fi
  local mgr=cgroupfs
  [ "$e" = podman5-session ] && mgr=systemd
  in_engine "$e" mkdir -p "/home/$u/.config/containers"
  podman_conf "$e" "$base" "$mgr" | in_engine "$e" sh -c "cat > /home/$u/.config/containers/containers.conf"
  in_engine "$e" chown -R "$uid:$uid" "/home/$u/.config"
  if [ "$e" = podman5-session ]; then session_up "$e" || return 1; fi
  log "$e: starting $u's podman system service"
  as_user "$e" mkdir -p "/run/user/$uid/podman"
  rm -f "$sock"
  if [ "$e" = podman5-session ]; then
    # As a user service of the user manager (as podman.socket would start it), so that Podman
    # and what it starts (netavark, then `systemd-run --user --scope aardvark-dns`) sit in the
    # user's delegated cgroups: the user manager can move them into scopes itself. From
    # outside (an ssh session) it would ask the system manager, which this host does not run.
    # Bounded retries: a user manager that has just come up may still refuse a call.
    local try
    for try in 1 2 3 4 5; do
      as_user "$e" systemctl --user stop podman-api >/dev/null 2>&1 || true
      as_user "$e" systemctl --user reset-failed >/dev/null 2>&1 || true
      as_user "$e" systemd-run --user --quiet --collect --unit=podman-api \
        -p "StandardOutput=append:/run/user/$uid/podman-api.log" -p "StandardError=append:/run/user/$uid/podman-api.log" \
        /usr/bin/podman system service --time=0 "unix:///run/user/$uid/podman/podman.sock" && break
      [ "$try" = 5 ] && return 1
      log "$e: systemd-run --user failed (attempt $try of 5); retrying in 1 s"
      sleep 1
    done
    wait_until 60 "$e" 0 answers "$sock" || { tail -20 "$RUN/$e/runtime/podman-api.log" >&2; return 1; }
    as_user "$e" systemctl --user show -P MainPID podman-api >"$RUN/$e/service.pid"
    return 0
  fi
  as_user_argv "$e"
  launch "$e" "$DATA/$e/service.log" "${ARGV[@]}" \
    podman system service --time=0 "unix:///run/user/$uid/podman/podman.sock"
  echo "$LAUNCHED" >"$RUN/$e/service.pid"
  wait_until 60 "$e" "$LAUNCHED" answers "$sock" || { tail -20 "$DATA/$e/service.log" >&2; return 1; }
}

# Whether the session engine's user manager and its session bus answer a call. A socket file
# alone says nothing: one left by an earlier manager, or one not yet served, refuses the
# connection ("Failed to connect to user scope bus via local transport: Connection refused",
# seen once in CI's `up`).
session_answers() {
  as_user "$1" systemctl --user show -P Version && as_user "$1" busctl --user --no-pager status
}

# A systemd user session for the session engine's user: the user's own cgroup subtree
# (delegated, as logind's user@.service would), its session bus and `systemd --user`. Started
# afresh up to three times, each waiting until both answer.
session_up() {
  local e=$1 uid=${USERID[$1]} try c
  if pid_alive "$RUN/$e/systemd.pid" && session_answers "$e" >/dev/null 2>&1; then return 0; fi
  for c in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified; do
    mkdir -p "$c/openshell-2026/$e/user@$uid.service"
    chown -R "$uid:$uid" "$c/openshell-2026/$e/user@$uid.service"
  done
  for try in 1 2 3; do
    [ -s "$RUN/$e/systemd.pid" ] && stop_pid "$(cat "$RUN/$e/systemd.pid")" "$e's systemd --user" 10
    # Sockets of a manager that is gone would pass for ready ones.
    rm -f "$RUN/$e/runtime/systemd/private" "$RUN/$e/runtime/bus"
    log "$e: starting systemd --user and the session bus (attempt $try of 3)"
    launch "$e" "$DATA/$e/systemd.log" nsenter --target "$(holder_pid "$e")" --mount --net --cgroup --root --wd -- sh -c "
      echo \$\$ > /sys/fs/cgroup/systemd/openshell-2026/$e/user@$uid.service/cgroup.procs
      echo \$\$ > /sys/fs/cgroup/unified/openshell-2026/$e/user@$uid.service/cgroup.procs
      exec setpriv --reuid $uid --regid $uid --init-groups --reset-env -- env -i \
        PATH=/usr/local/bin:/usr/bin:/bin HOME=/home/${USERNAME[$e]} USER=${USERNAME[$e]} \
        XDG_RUNTIME_DIR=/run/user/$uid DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/$uid/bus \
        /usr/lib/systemd/systemd --user"
    echo "$LAUNCHED" >"$RUN/$e/systemd.pid"
    if wait_until 30 "$e's systemd --user and its session bus" "$LAUNCHED" session_answers "$e"; then
      return 0
    fi
    tail -30 "$DATA/$e/systemd.log" >&2
  done
  return 1
}

docker26_up() { # base
  local e=docker26 base=$1 k=2 sock=$RUN/docker26/docker.sock
  if pid_alive "$RUN/$e/service.pid" && answers "$sock"; then return 0; fi
  echo '{}' | in_engine "$e" sh -c 'mkdir -p /etc/docker && cat > /etc/docker/daemon.json'
  log "$e: starting dockerd"
  rm -f "$sock"
  launch "$e" "$DATA/$e/service.log" nsenter --target "$(holder_pid "$e")" --mount --net --cgroup --root --wd -- \
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    dockerd --exec-opt native.cgroupdriver=cgroupfs \
    --bip "$base.$k.1/24" --default-address-pool "base=$base.$((32 + 32 * k)).0/19,size=24" \
    -H "unix:///run/openshell-2026/$e/docker.sock"
  echo "$LAUNCHED" >"$RUN/$e/service.pid"
  wait_until 60 "$e" "$LAUNCHED" answers "$sock" || { tail -20 "$DATA/$e/service.log" >&2; return 1; }
}

docker26_rootless_up() { # base
  local e=docker26-rootless base=$1 k=5 uid=${USERID[docker26-rootless]} u=${USERNAME[docker26-rootless]}
  local sock=$RUN/$e/runtime/docker.sock
  if pid_alive "$RUN/$e/service.pid" && answers "$sock"; then return 0; fi
  log "$e: starting $u's dockerd-rootless.sh"
  rm -f "$sock"
  # Debian's defaults of dockerd-rootless.sh (slirp4netns, host loopback disabled), the cgroupfs
  # driver (no systemd user session).
  as_user_argv "$e"
  launch "$e" "$DATA/$e/service.log" "${ARGV[@]}" \
    dockerd-rootless.sh --exec-opt native.cgroupdriver=cgroupfs \
    --bip "$base.$k.1/24" --default-address-pool "base=$base.$((32 + 32 * k)).0/19,size=24"
  echo "$LAUNCHED" >"$RUN/$e/service.pid"
  wait_until 90 "$e" "$LAUNCHED" answers "$sock" || { tail -20 "$DATA/$e/service.log" >&2; return 1; }
}

# A second rootless dockerd of the same user in the same namespace, with RootlessKit's host
# loopback enabled (DOCKERD_ROOTLESS_ROOTLESSKIT_DISABLE_HOST_LOOPBACK=false): slirp4netns then
# forwards 10.0.2.2 to the namespace's 127.0.0.1. Its own runtime directory (socket, RootlessKit
# state, exec root), data root and address ranges (k=6, which no engine uses); it lives in the
# engine's cgroup, so `down` ends it with the rest.
docker26_rootless_loopback_up() { # base
  local e=docker26-rootless base=$1 k=6 uid=${USERID[docker26-rootless]} u=${USERNAME[docker26-rootless]}
  local dir=/run/user/$uid/hostloopback sock=$RUN/$e/runtime/hostloopback/docker.sock
  if pid_alive "$RUN/$e/hostloopback.pid" && answers "$sock"; then return 0; fi
  log "$e: starting $u's second dockerd-rootless.sh, with host loopback"
  as_user "$e" mkdir -p -m 700 "$dir"
  rm -f "$sock"
  as_user_argv "$e"
  launch "$e" "$DATA/$e/hostloopback.log" "${ARGV[@]}" \
    XDG_RUNTIME_DIR="$dir" DOCKERD_ROOTLESS_ROOTLESSKIT_DISABLE_HOST_LOOPBACK=false \
    dockerd-rootless.sh --exec-opt native.cgroupdriver=cgroupfs \
    --data-root "/home/$u/.local/share/docker-hostloopback" \
    --bip "$base.$k.1/24" --default-address-pool "base=$base.$((32 + 32 * k)).0/19,size=24"
  echo "$LAUNCHED" >"$RUN/$e/hostloopback.pid"
  wait_until 90 "$e with host loopback" "$LAUNCHED" answers "$sock" ||
    { tail -20 "$DATA/$e/hostloopback.log" >&2; return 1; }
}

# A busybox image imported into engine $1 (no registry): Debian's busybox-static, as scripts/test.
IMAGE=localhost/openshell-busybox:2026
image_up() {
  local e=$1 cli
  case $e in
    podman5) cli=(in_engine "$e" podman --url "unix:///run/openshell-2026/$e/podman.sock") ;;
    podman5-*) cli=(as_user "$e" podman --url "unix:///run/user/${USERID[$e]}/podman/podman.sock") ;;
    docker26) cli=(in_engine "$e" docker -H "unix:///run/openshell-2026/$e/docker.sock") ;;
    docker26-rootless) cli=(as_user "$e" docker -H "unix:///run/user/${USERID[$e]}/docker.sock") ;;
  esac
  if "${cli[@]}" image inspect "$IMAGE" >/dev/null 2>&1; then return 0; fi
  local t
  t=$(mktemp -d)
  mkdir -p "$t/root/bin" "$t/root/etc"
  cp "$ROOTFS/bin/busybox" "$t/root/bin/"
  for applet in sh nc wget sleep timeout cat nslookup ip; do ln -s busybox "$t/root/bin/$applet"; done
  echo "hosts: files dns" >"$t/root/etc/nsswitch.conf"
  local rc=0
  tar -C "$t/root" -cf - . | "${cli[@]}" import - "$IMAGE" >/dev/null || rc=1
  rm -rf "$t"
  return "$rc"
}

write_env() {
  local base=$1 e k uid
  {
    echo "# Written by scripts/engines-2026.sh: Debian 13's engines, each in network namespace NETNS,"
    echo "# the namespace a gateway must run in (ip netns exec NETNS …) to be the engine's host."
    for e in "${ENGINES[@]}"; do
      [ -s "$RUN/$e/holder.pid" ] || continue
      local v=OPENSHELL_2026_${e//-/_}
      v=${v^^}
      k=${IDX[$e]}
      uid=${USERID[$e]:-}
      case $e in
        podman5 ) echo "${v}_SOCKET=$RUN/$e/podman.sock" ;;
        docker26 ) echo "${v}_SOCKET=$RUN/$e/docker.sock" ;;
        podman5-*) echo "${v}_SOCKET=$RUN/$e/runtime/podman/podman.sock" ;;
        docker26-rootless) echo "${v}_SOCKET=$RUN/$e/runtime/docker.sock"
          echo "${v}_HOSTLOOPBACK_SOCKET=$RUN/$e/runtime/hostloopback/docker.sock" ;;
      esac
      echo "${v}_NETNS=$(netns "$e")"
      echo "${v}_HOST_ADDR=$base.$((10 + k)).2"
      echo "${v}_BRIDGE_SUBNET=$base.$k.0/24"
      [ -z "$uid" ] || echo "${v}_UID=$uid"
    done
    echo "OPENSHELL_2026_IMAGE=$IMAGE"
  } >"$RUN/env"
}

# --- check: the live proof of docs/engines-2026.md ------------------------------------------------

# A one-shot TCP listener in engine $1's network namespace on $2:$3 for at most $4 seconds: it
# prints where a connection came from (Python of this host; it runs in the namespace only).
listener() {
  nsenter --net="/run/netns/$(netns "$1")" -- timeout $(($4 + 5)) python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); s.settimeout(float(sys.argv[3]))
try:
    c, peer = s.accept(); c.settimeout(5); c.recv(100); c.sendall(b"pong\n"); c.close()
    print("listener %s:%s ACCEPTED a connection from %s" % (sys.argv[1], sys.argv[2], peer[0]))
except socket.timeout:
    print("listener %s:%s got NO connection" % (sys.argv[1], sys.argv[2]))
' "$2" "$3" "$4"
}

check_engine() {
  local e=$1 k=${IDX[$1]} base sock cli api info
  base=$(cat "$RUN/base")
  case $e in
    podman5) sock=$RUN/$e/podman.sock; cli=(in_engine "$e" podman --url "unix:///run/openshell-2026/$e/podman.sock") ;;
    podman5-*) sock=$RUN/$e/runtime/podman/podman.sock; cli=(as_user "$e" podman --url "unix:///run/user/${USERID[$e]}/podman/podman.sock") ;;
    docker26) sock=$RUN/$e/docker.sock; cli=(in_engine "$e" docker -H "unix:///run/openshell-2026/$e/docker.sock") ;;
    docker26-rootless) sock=$RUN/$e/runtime/docker.sock; cli=(as_user "$e" docker -H "unix:///run/user/${USERID[$e]}/docker.sock") ;;
  esac
  local host=$base.$((10 + k)).2 port=$((7100 + 10 * k)) net=osh-check
  echo "== $e (socket $sock, network namespace $(netns "$e"), host address $host)"
  echo "GET /_ping: $(curl -sS --max-time 5 --unix-socket "$sock" http://d/_ping)"
  curl -sS --max-time 5 --unix-socket "$sock" http://d/version | python3 -c '
import json, sys; d = json.load(sys.stdin)
print("GET /version: Version %s ApiVersion %s MinAPIVersion %s Os %s" % (d["Version"], d["ApiVersion"], d.get("MinAPIVersion"), d.get("Os")))'
  case $e in
    podman5*) curl -sS --max-time 10 --unix-socket "$sock" http://d/v4.0.0/libpod/info | python3 -c '
import json, sys; d = json.load(sys.stdin); h = d["host"]
print("GET /v4.0.0/libpod/info: version %s rootless %s cgroup %s/%s networkBackend %s %s ociRuntime %s storage %s rootlessNetworkCmd %s pasta %s" % (
  d["version"]["Version"], h["security"]["rootless"], h["cgroupVersion"], h["cgroupManager"], h["networkBackend"],
  h["networkBackendInfo"]["version"], h["ociRuntime"]["name"], d["store"]["graphDriverName"], h.get("rootlessNetworkCmd"),
  (h.get("pasta") or {}).get("package")))' ;;
  esac
  echo "run on the default network: $("${cli[@]}" run --rm "$IMAGE" sh -c 'ip -4 -o addr show | grep -v " lo " | awk "{print \$2, \$4}" | tr "\n" " "; echo "/ hosts:"; grep -E "host\.(containers|docker)\.internal" /etc/hosts' 2>&1 | tr '\n' ' ')"
  "${cli[@]}" rm -f -t 0 osh-check-peer >/dev/null 2>&1 || true
  "${cli[@]}" network rm -f "$net" >/dev/null 2>&1 || true
  local target bind gw
  case $e in
    podman5-rootless)
      echo "network create $net (DNS enabled): $("${cli[@]}" network create "$net" 2>&1)"
      echo "run on it: $("${cli[@]}" run --rm --network "$net" "$IMAGE" true 2>&1; echo " (exit $?)")" | tr '\n' ' '
      echo
      "${cli[@]}" network rm -f "$net" >/dev/null 2>&1
      echo "network create --disable-dns $net: $("${cli[@]}" network create --disable-dns "$net" 2>&1)" ;;
    *) echo "network create $net: $("${cli[@]}" network create "$net" 2>&1 | cut -c1-20)" ;;
  esac
  case $e in
    podman5*) gw=$("${cli[@]}" network inspect "$net" --format '{{range .Subnets}}{{.Gateway}}{{end}}') ;;
    docker26*) gw=$("${cli[@]}" network inspect "$net" --format '{{range .IPAM.Config}}{{.Gateway}}{{end}}') ;;
  esac
  echo "$net's gateway: $gw"
  case $e in
    podman5 | docker26)
      # Rootful: the gateway listens on the bridge's address in the engine's namespace. Podman
      # makes the bridge only when a first container joins the network.
      [ "$e" = podman5 ] && "${cli[@]}" run -d --name osh-check-peer --network "$net" "$IMAGE" sleep 60 >/dev/null
      bind=$gw target=$gw ;;
    podman5-rootless | podman5-session) bind=$host target=host.containers.internal ;;
    docker26-rootless) bind=$host target=$host ;;
  esac
  listener "$e" "$bind" "$port" 15 &
  sleep 1
  echo "container on $net -> $target:$port: $("${cli[@]}" run --rm --network "$net" --add-host gw:host-gateway "$IMAGE" sh -c "grep -w gw /etc/hosts | cut -f1 | sed 's/^/host-gateway=/'; echo ping | nc -w 5 $target $port >/dev/null && echo connected || echo 'connect failed'" 2>&1 | tr '\n' ' ')"
  wait
  case $e in
    podman5-rootless | podman5-session | docker26-rootless)
      # The host's loopback: a listener on 127.0.0.1 of the engine's host.
      local via=169.254.1.2
      [ "$e" = docker26-rootless ] && via=10.0.2.2
      listener "$e" 127.0.0.1 $((port + 1)) 8 &
      sleep 1
      echo "container on $net -> $via:$((port + 1)) (host listens on 127.0.0.1 only): $("${cli[@]}" run --rm --network "$net" "$IMAGE" sh -c "echo ping | nc -w 3 $via $((port + 1)) >/dev/null && echo connected || echo 'connect failed'" 2>&1 | tr '\n' ' ')"
      wait ;;
  esac
  "${cli[@]}" rm -f -t 0 osh-check-peer >/dev/null 2>&1 || true
  "${cli[@]}" network rm -f "$net" >/dev/null 2>&1 || true
}

check() {
  local e
  for e in "${@:-${ENGINES[@]}}"; do
    if [ -s "$RUN/$e/holder.pid" ]; then check_engine "$e"; else echo "== $e: not up"; fi
  done
}

# --- up / down ------------------------------------------------------------------------------------

up() {
  command -v curl >/dev/null 2>&1 || die "curl is missing"
  rootfs_up
  local base e
  if [ -s "$RUN/base" ]; then
    base=$(cat "$RUN/base")
  else
    base=$(choose_base) || die "every candidate range collides with this host's networks; edit CANDIDATES in $0"
  fi
  mkdir -p "$RUN" "$DATA" "$CGROUP"
  chmod 755 "$RUN"
  echo "$base" >"$RUN/base"
  local only=("${@:-${ENGINES[@]}}") failed=()
  for e in "${only[@]}"; do
    [ -n "${IDX[$e]:-}" ] || die "unknown engine $e (${ENGINES[*]})"
    netns_up "$e" "$base"
    if ! holder_up "$e" "$base"; then failed+=("$e"); continue; fi
    case $e in
      podman5) podman5_up "$base" ;;
      podman5-rootless | podman5-session) podman5_rootless_up "$e" "$base" ;;
      docker26) docker26_up "$base" ;;
      docker26-rootless) docker26_rootless_up "$base" && docker26_rootless_loopback_up "$base" ;;
    esac || { failed+=("$e"); continue; }
    image_up "$e" || { log "$e: importing $IMAGE failed"; failed+=("$e"); }
  done
  write_env "$base"
  [ "${#failed[@]}" -eq 0 ] || die "not up: ${failed[*]}"
  log "up: ${only[*]}"
}

stop_pid() { # pid, name, seconds
  local pid=$1 name=$2 secs=$3 i
  kill -0 "$pid" 2>/dev/null || return 0
  log "stopping $name ($pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 $((secs * 4))); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.25
  done
  log "$name did not stop within ${secs}s: killing it"
  kill -KILL "$pid" 2>/dev/null || true
}

engine_down() {
  local e=$1 ns pids i
  ns=$(netns "$e")
  if pid_alive "$RUN/$e/holder.pid"; then
    # Containers first, while the engine still runs their cleanup (bounded).
    case $e in
      podman5) timeout 60 nsenter --target "$(holder_pid "$e")" --mount --net --cgroup --root --wd -- \
        podman --url "unix:///run/openshell-2026/$e/podman.sock" rm -af -t 0 >/dev/null 2>&1 || true ;;
      podman5-*) timeout 60 as_user "$e" podman --url "unix:///run/user/${USERID[$e]}/podman/podman.sock" rm -af -t 0 >/dev/null 2>&1 || true
        timeout 30 as_user "$e" podman system migrate >/dev/null 2>&1 || true ;;
    esac
  fi
  [ -s "$RUN/$e/service.pid" ] && stop_pid "$(cat "$RUN/$e/service.pid")" "$e" 30
  [ -s "$RUN/$e/hostloopback.pid" ] && stop_pid "$(cat "$RUN/$e/hostloopback.pid")" "$e with host loopback" 30
  [ -s "$RUN/$e/systemd.pid" ] && stop_pid "$(cat "$RUN/$e/systemd.pid")" "$e's systemd --user" 10
  # What is left: every process of the engine's cgroup (children inherit it: the holder, the
  # service, conmon, pasta, rootlesskit, slirp4netns, rootless containers) and of its namespace.
  for i in 1 2 3 4 5 6 7 8 9 10; do
    pids=$( { cat "$CGROUP/$e/cgroup.procs" 2>/dev/null; ip netns pids "$ns" 2>/dev/null; } | sort -u | tr '\n' ' ')
    [ -n "${pids// /}" ] || break
    [ "$i" = 1 ] && log "$e: killing what is left: $pids"
    kill -KILL $pids 2>/dev/null || true
    sleep 0.3
  done
  # Its cgroups in every hierarchy (the rootful engines' containers, the user manager's units).
  local c
  for c in /sys/fs/cgroup/*/openshell-2026/"$e"; do
    [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
  ip netns del "$ns" 2>/dev/null || true
  # Every mount of the engine was in its private mount namespace, gone with its last process.
  rm -rf "${RUN:?}/$e" "${DATA:?}/$e"
}

down() {
  local e
  for e in "${ENGINES[@]}"; do
    [ -d "$RUN/$e" ] || [ -d "$DATA/$e" ] || ip netns list | awk '{ print $1 }' | grep -qx "$(netns "$e")" || continue
    engine_down "$e"
  done
  local c
  for c in /sys/fs/cgroup/*/openshell-2026; do
    rmdir "$c" 2>/dev/null || true
  done
  if [ -e "$CACHE/made-run-netns" ] && [ -z "$(ip netns list)" ] && mountpoint -q /run/netns; then
    # Not lazily, not recursively: only the bind `ip netns add` made, and only when unused.
    umount /run/netns && rm -f "$CACHE/made-run-netns"
  fi
  rm -rf "$RUN" "$DATA"
  log "down (the root filesystem stays cached in $ROOTFS; rm -rf $CACHE drops it)"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) down ;;
  env) cat "$RUN/env" ;;
  check) shift; check "$@" ;;
  *) die "usage: $0 up [engine…]|down|env|check [engine…]" ;;
esac
