#!/usr/bin/env bash
# Two VMs for the live tests of issue 24, networked the way the runtimes this project decides
# from captures network theirs, booted under qemu (TCG: this machine's KVM cannot run a vCPU):
#
# - podman-machine: the network of `podman machine` (gvproxy: 192.168.127.0/24, the guest at
#   .2, gvproxy's gateway at .1, the host's loopback at 192.168.127.254 through gvproxy's NAT),
#   Podman 5 inside (rootful API service), its API socket forwarded to this host by gvproxy's
#   `-forward-sock` over ssh, as `podman machine start` does, at Podman 5's Linux path
#   `$XDG_RUNTIME_DIR/podman/podman-machine-default-api.sock`.
# - colima: Lima's network (qemu user mode, `net=192.168.5.0/24,host=192.168.5.2`, the guest at
#   .15, as Lima's DHCP gives it), dockerd inside started as Colima starts it
#   (`--host-gateway-ip=192.168.5.2`), hostname `colima`, its socket forwarded over ssh to
#   `~/.colima/default/docker.sock` as Colima does.
#
#   bash scripts/vm.sh up [podman-machine|colima…]  # builds (or reuses) the image, boots, forwards
#   bash scripts/vm.sh down                         # stops every VM and helper, removes $RUN
#   bash scripts/vm.sh env                          # the settings the tests read
#   bash scripts/vm.sh build                        # only the image
#   bash scripts/vm.sh check                        # the isolation, checked from the guests
#
# Isolation (the network rule): each VM's qemu, and gvproxy, run in a network namespace of
# their own that holds only a loopback (`unshare --net`, held by a `sleep`; no `ip netns`
# handle, nothing mounted). Both NATs (gvproxy's, slirp's) therefore reach nothing but that
# namespace's 127.0.0.1: the guest's "host loopback" (192.168.127.254, 192.168.5.2) is the
# namespace's, where the tests run their gateway (`nsenter --net=$NETNS …`), and no packet
# of a guest can leave this host: there is no route, no DNS upstream (gvproxy's and slirp's
# DNS forwarders find none), no registry. slirp's `restrict=on` is not used because it would
# also cut 192.168.5.2 -> host loopback, the very path Lima and Colima provide; the empty
# namespace is the stronger restriction (nothing is reachable even by a misbehaving NAT).
# The forwarded sockets are Unix sockets on this host's filesystem, reachable from any
# namespace.
#
# The image: `mmdebstrap` of Debian 13 (trixie) with linux-image-amd64, Podman 5, docker.io,
# openssh-server and gvproxy, from Debian's mirror only, made into an ext4 file system image
# (`mkfs.ext4 -d`, no loop mount) and cached in $CACHE with its kernel, initrd, an ssh key and
# gvproxy's binary (Debian 13's gvproxy runs on Debian 12 as it is; nothing of trixie is
# installed on the host). The VMs boot it with `snapshot=on`: the cache is never written.
# PID 1 in the guest is a small script (no systemd: boots faster under TCG) that mounts,
# configures the static address, starts sshd and the engine, then execs catatonit to reap.
#
# Every wait is bounded. Run as root. `up` tears everything down when it fails; so does `down`.
set -euo pipefail
cd /

RUN=/run/openshell-vm
CACHE=${OPENSHELL_VM_CACHE:-/var/cache/openshell-vm}
MIRROR=http://deb.debian.org/debian
PACKAGES=linux-image-amd64,initramfs-tools,podman,netavark,aardvark-dns,crun,runc,conmon,catatonit,docker.io,openssh-server,iproute2,iptables,nftables,busybox-static,gvproxy,kmod,procps,ca-certificates
# Bumped whenever the image's contents change beyond its package list.
IMAGE_REV=1
VMS=(podman-machine colima)
BOOT_SECS=${OPENSHELL_VM_BOOT_SECS:-420}
MEM=${OPENSHELL_VM_MEM:-1536}

log() { printf 'vm: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root"

wait_until() { # seconds, description, pid (0: none), command...
  local secs=$1 what=$2 pid=$3 i
  shift 3
  for i in $(seq 1 $((secs * 2))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if [ "$pid" != 0 ] && ! kill -0 "$pid" 2>/dev/null; then
      log "$what exited"
      return 1
    fi
    sleep 0.5
  done
  log "$what did not come up within ${secs}s"
  return 1
}

answers() { curl -fsS --max-time 5 --unix-socket "$1" http://d/_ping >/dev/null 2>&1; }
pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# --- the image ----------------------------------------------------------------------------------

stamp() { echo "$PACKAGES rev=$IMAGE_REV"; }

# PID 1 of the guest. Its role comes from the kernel command line (osh.role=).
guest_init() {
  cat <<'INIT'
#!/bin/sh
# PID 1 of openshell-runtime's test VMs (scripts/vm.sh): mounts, network, sshd, the engine.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mount -o remount,rw /
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
role=$(sed -n 's/.*osh\.role=\([a-z-]*\).*/\1/p' /proc/cmdline)
for m in virtio_net virtio_rng overlay bridge veth br_netfilter nf_tables nft_chain_nat nft_compat nf_nat nf_conntrack xt_MASQUERADE xt_addrtype xt_conntrack iptable_nat iptable_filter; do
  modprobe -q "$m" 2>/dev/null || true
done
ip link set lo up
dev=$(ls /sys/class/net | grep -v '^lo$' | head -n 1)
case $role in
  podman-machine) addr=192.168.127.2/24 gw=192.168.127.1 name=localhost.localdomain ;;
  colima) addr=192.168.5.15/24 gw=192.168.5.2 name=colima ;;
  *) echo "openshell-vm: unknown role '$role'" >/dev/console; exec catatonit -- sleep infinity ;;
esac
hostname "$name"
ip link set "$dev" up
ip addr add "$addr" dev "$dev"
ip route add default via "$gw"
mkdir -p /run/sshd /run/podman /var/log
/usr/sbin/sshd -E /var/log/sshd.log
case $role in
  podman-machine)
    podman system service --time=0 unix:///run/podman/podman.sock >/var/log/podman.log 2>&1 &
    ;;
  colima)
    dockerd --host-gateway-ip=192.168.5.2 -H unix:///var/run/docker.sock >/var/log/dockerd.log 2>&1 &
    ;;
esac
echo "openshell-vm: $role: sshd and the engine started" >/dev/console
exec catatonit -- sleep infinity
INIT
}

build() {
  if [ -s "$CACHE/disk.img" ] && [ "$(cat "$CACHE/stamp" 2>/dev/null)" = "$(stamp)" ]; then
    return 0
  fi
  local t0=$SECONDS
  for v in "${VMS[@]}"; do
    if pid_alive "$RUN/$v/qemu.pid"; then die "$v runs on the cached image: run down first"; fi
  done
  mkdir -p "$CACHE"
  local root=$CACHE/rootfs.tmp
  if [ -s "$root/.openshell-packages" ] && [ "$(cat "$root/.openshell-packages")" = "$PACKAGES" ]; then
    log "reusing the root filesystem in $root"
  else
    log "building the trixie root filesystem (mmdebstrap, Debian's mirror only)"
    rm -rf "$root"
    # In a private mount namespace: whatever mmdebstrap mounts (proc, sys, dev) cannot leak.
    unshare --mount --propagation private -- nice -n 10 mmdebstrap --mode=root --variant=minbase \
      --keyring=/usr/share/keyrings/debian-archive-keyring.gpg --include="$PACKAGES" \
      trixie "$root" "$MIRROR" >"$CACHE/mmdebstrap.log" 2>&1 ||
      { tail -20 "$CACHE/mmdebstrap.log" >&2; die "mmdebstrap failed"; }
    echo "$PACKAGES" >"$root/.openshell-packages"
  fi
  log "configuring the image"
  guest_init >"$root/usr/local/sbin/openshell-vm-init"
  chmod 755 "$root/usr/local/sbin/openshell-vm-init"
  rm -f "$CACHE/id_ed25519" "$CACHE/id_ed25519.pub"
  ssh-keygen -q -t ed25519 -N '' -C openshell-vm -f "$CACHE/id_ed25519"
  mkdir -p "$root/root/.ssh"
  chmod 700 "$root/root/.ssh"
  cp "$CACHE/id_ed25519.pub" "$root/root/.ssh/authorized_keys"
  rm -f "$root"/etc/ssh/ssh_host_*
  ssh-keygen -q -t ed25519 -N '' -C openshell-vm -f "$root/etc/ssh/ssh_host_ed25519_key"
  echo "openshell-vm $(cat "$root/etc/ssh/ssh_host_ed25519_key.pub")" >"$CACHE/known_hosts"
  cat >"$root/etc/ssh/sshd_config.d/openshell.conf" <<'SSHD'
PermitRootLogin prohibit-password
PasswordAuthentication no
HostKey /etc/ssh/ssh_host_ed25519_key
UseDNS no
SSHD
  # Podman without systemd (PID 1 is a script): cgroupfs and file events, as on any such host.
  mkdir -p "$root/etc/containers/containers.conf.d"
  cat >"$root/etc/containers/containers.conf.d/openshell.conf" <<'CONF'
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
  echo "/dev/vda / ext4 rw 0 1" >"$root/etc/fstab"
  echo localhost >"$root/etc/hostname"
  local kernel initrd
  kernel=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -n 1)
  initrd=$(ls "$root"/boot/initrd.img-* | sort -V | tail -n 1)
  [ -f "$kernel" ] && [ -f "$initrd" ] || die "no kernel or initrd in the root filesystem"
  cp "$kernel" "$CACHE/vmlinuz"
  cp "$initrd" "$CACHE/initrd.img"
  cp "$root/usr/bin/gvproxy" "$CACHE/gvproxy"
  log "making the disk image (mkfs.ext4 -d)"
  rm -f "$CACHE/disk.img.tmp"
  local mb
  mb=$(du -sm "$root" | cut -f1)
  mkfs.ext4 -q -F -L openshell-vm -d "$root" "$CACHE/disk.img.tmp" "$((mb + 3072))M" >/dev/null
  mv "$CACHE/disk.img.tmp" "$CACHE/disk.img"
  rm -rf "$root"
  stamp >"$CACHE/stamp"
  log "image built in $((SECONDS - t0))s ($CACHE/disk.img)"
}

# --- the VMs ------------------------------------------------------------------------------------

netns_of() { echo "/proc/$(cat "$RUN/$1/netns.pid")/ns/net"; }

# A network namespace holding only a loopback, kept by a `sleep` (its pid in $RUN/VM/netns.pid).
netns_up() {
  local v=$1
  unshare --net -- sh -c 'ip link set lo up && exec sleep infinity' </dev/null >/dev/null 2>&1 &
  echo $! >"$RUN/$v/netns.pid"
  wait_until 10 "$v's network namespace" "$!" sh -c "[ \"\$(readlink /proc/$!/ns/net)\" != \"\$(readlink /proc/self/ns/net)\" ]"
}

# Runs a command in VM $1's network namespace, in the background; its pid in $RUN/VM/$2.pid.
in_netns_bg() {
  local v=$1 name=$2
  shift 2
  nsenter --net="$(netns_of "$v")" -- "$@" </dev/null >"$RUN/$v/$name.log" 2>&1 &
  echo $! >"$RUN/$v/$name.pid"
}

qemu_args() { # vm
  local v=$1
  QEMU=(qemu-system-x86_64 -nodefaults -no-user-config -display none -no-reboot
    -machine q35 -accel tcg -cpu max -smp 1 -m "$MEM"
    -kernel "$CACHE/vmlinuz" -initrd "$CACHE/initrd.img"
    -append "root=/dev/vda rw console=ttyS0 quiet panic=-1 init=/usr/local/sbin/openshell-vm-init osh.role=$v"
    -drive "file=$CACHE/disk.img,if=virtio,format=raw,snapshot=on"
    -device virtio-rng-pci
    -serial "file:$RUN/$v/console.log")
}

ssh_opts() {
  SSH_OPTS=(-i "$CACHE/id_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes
    -o UserKnownHostsFile="$CACHE/known_hosts" -o StrictHostKeyChecking=yes -o HostKeyAlias=openshell-vm
    -o ConnectTimeout=5 -o ServerAliveInterval=5 -o ServerAliveCountMax=6 -F /dev/null)
}

podman_machine_up() {
  local v=podman-machine d=$RUN/podman-machine
  local xdg=$d/xdg sock=$d/xdg/podman/podman-machine-default-api.sock
  mkdir -p "$xdg/podman"
  chmod 700 "$xdg"
  # gvproxy as `podman machine start` runs it (its qemu socket, the API forward over ssh).
  in_netns_bg "$v" gvproxy "$CACHE/gvproxy" -mtu 1500 -ssh-port 2222 \
    -listen-qemu "unix://$d/qemu.sock" -pid-file "$d/gvproxy.own.pid" \
    -forward-sock "$sock" -forward-dest /run/podman/podman.sock -forward-user root \
    -forward-identity "$CACHE/id_ed25519"
  wait_until 20 "gvproxy" "$(cat "$d/gvproxy.pid")" test -S "$d/qemu.sock" || { tail -n 20 "$d/gvproxy.log" >&2; return 1; }
  qemu_args "$v"
  in_netns_bg "$v" qemu "${QEMU[@]}" \
    -netdev "stream,id=net0,server=off,addr.type=unix,addr.path=$d/qemu.sock" \
    -device virtio-net-pci,netdev=net0,mac=5a:94:ef:e4:0c:ee
  echo "$sock" >"$d/socket"
}

colima_up() {
  local v=colima d=$RUN/colima
  local home=$d/home sock=$d/home/.colima/default/docker.sock
  mkdir -p "$home/.colima/default"
  chmod 700 "$home"
  # `colima start` makes a docker context `colima` for the socket and makes it current.
  local meta
  meta=$home/.docker/contexts/meta/$(printf colima | sha256sum | cut -d' ' -f1)
  mkdir -p "$meta"
  printf '{"Name":"colima","Metadata":{"Description":"colima"},"Endpoints":{"docker":{"Host":"unix://%s","SkipTLSVerify":false}}}\n' "$sock" >"$meta/meta.json"
  printf '{"currentContext":"colima"}\n' >"$home/.docker/config.json"
  qemu_args "$v"
  # Lima's user-mode network; ssh as Lima forwards it (a loopback port of the namespace).
  in_netns_bg "$v" qemu "${QEMU[@]}" \
    -netdev "user,id=net0,net=192.168.5.0/24,host=192.168.5.2,dns=192.168.5.3,dhcpstart=192.168.5.15,hostfwd=tcp:127.0.0.1:60022-:22" \
    -device virtio-net-pci,netdev=net0,mac=52:55:55:12:34:56
  echo "$sock" >"$d/socket"
}

# Colima's socket forward (ssh -L), once the guest's sshd answers.
colima_forward() {
  local v=colima d=$RUN/colima sock
  sock=$(cat "$d/socket")
  ssh_opts
  wait_until "$BOOT_SECS" "colima's sshd" "$(cat "$d/qemu.pid")" \
    nsenter --net="$(netns_of "$v")" -- ssh "${SSH_OPTS[@]}" -p 60022 root@127.0.0.1 true ||
    { tail -n 20 "$d/console.log" >&2; return 1; }
  rm -f "$sock"
  # Lima's host agent re-establishes a dropped forward; so does this loop (a session can drop
  # when the loaded TCG guest misses keepalives). Bounded in restarts; in a session of its own,
  # so that `down` stops the loop and its ssh together (by that session's process group).
  in_netns_bg "$v" ssh setsid sh -c 'for i in $(seq 1 200); do "$@"; sleep 1; done' sh \
    ssh "${SSH_OPTS[@]}" -p 60022 -N -o ExitOnForwardFailure=yes \
    -o StreamLocalBindUnlink=yes -L "$sock:/var/run/docker.sock" root@127.0.0.1
}

vm_ready() { # vm
  local v=$1 d=$RUN/$1
  wait_until "$BOOT_SECS" "$v's engine on $(cat "$d/socket")" "$(cat "$d/qemu.pid")" answers "$(cat "$d/socket")" ||
    { log "$v: its logs"; tail -n 20 "$d"/*.log >&2 || true; return 1; }
}

write_env() {
  {
    echo "# Written by scripts/vm.sh: the VMs' forwarded engine sockets and the network namespaces"
    echo "# where their host loopback is (run a gateway there: nsenter --net=NETNS …)."
    local v var
    for v in "${VMS[@]}"; do
      [ -s "$RUN/$v/socket" ] || continue
      var=OPENSHELL_VM_${v//-/_}
      var=${var^^}
      echo "${var}_SOCKET=$(cat "$RUN/$v/socket")"
      echo "${var}_NETNS=$(netns_of "$v")"
    done
    echo "OPENSHELL_VM_PODMAN_MACHINE_XDG_RUNTIME_DIR=$RUN/podman-machine/xdg"
    echo "OPENSHELL_VM_COLIMA_HOME=$RUN/colima/home"
  } >"$RUN/env"
}

# Debian 12's qemu (7.2: `-netdev stream`), mmdebstrap, e2fsprogs (`mkfs.ext4 -d`), the ssh
# client and curl, when missing. gvproxy is not among them: Debian 12 has none, and Debian
# 13's comes out of the image's root filesystem.
tools() {
  local need=()
  command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
  command -v mmdebstrap >/dev/null 2>&1 || need+=(mmdebstrap)
  command -v mkfs.ext4 >/dev/null 2>&1 || need+=(e2fsprogs)
  command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
  command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
  command -v curl >/dev/null 2>&1 || need+=(curl)
  [ "${#need[@]}" -eq 0 ] && return 0
  log "installing ${need[*]} (Debian 12's)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

up() {
  tools
  local only=("${@:-${VMS[@]}}") v t0=$SECONDS
  build
  local tb=$SECONDS
  mkdir -p "$RUN"
  chmod 755 "$RUN"
  for v in "${only[@]}"; do
    case $v in podman-machine | colima) ;; *) die "unknown VM $v (${VMS[*]})" ;; esac
    if pid_alive "$RUN/$v/qemu.pid" && [ -s "$RUN/$v/socket" ] && answers "$(cat "$RUN/$v/socket")"; then continue; fi
    vm_down "$v"
    mkdir -p "$RUN/$v"
    netns_up "$v"
    log "$v: booting"
    case $v in
      podman-machine) podman_machine_up ;;
      colima) colima_up ;;
    esac
  done
  for v in "${only[@]}"; do
    [ "$v" = colima ] && ! answers "$(cat "$RUN/colima/socket")" && { colima_forward || return 1; }
    vm_ready "$v" || return 1
    log "$v: up ($((SECONDS - tb))s after the image was ready)"
  done
  write_env
  log "up: ${only[*]} in $((SECONDS - t0))s"
}

stop_pid() { # pidfile, name
  local f=$1 pid i
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 20); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.25
  done
  log "$2 ($pid) did not stop within 5s: killing it"
  kill -KILL "$pid" 2>/dev/null || true
}

vm_down() {
  local v=$1 d=$RUN/$1 p
  [ -d "$d" ] || return 0
  # The forward loop leads its own process group (setsid): stop the group, ssh with it.
  if [ -s "$d/ssh.pid" ] && kill -0 "$(cat "$d/ssh.pid")" 2>/dev/null; then
    kill -TERM -- "-$(cat "$d/ssh.pid")" 2>/dev/null || true
  fi
  for p in ssh qemu gvproxy netns; do stop_pid "$d/$p.pid" "$v's $p"; done
  rm -rf "${d:?}"
}

down() {
  local v
  for v in "${VMS[@]}"; do vm_down "$v"; done
  rm -rf "$RUN"
  log "down (the image stays cached in $CACHE; rm -rf $CACHE drops it)"
}

# The isolation, checked from inside each guest: its "host loopback" address reaches a
# one-shot listener on its namespace's 127.0.0.1, and an outside address (TEST-NET-1, which
# no network routes) is unreachable. Fails when either does not hold. Bounded: 5 s per
# connection, 20 s per listener.
check() {
  local v d ssh_port host port=17999 out rc=0
  ssh_opts
  for v in "${VMS[@]}"; do
    d=$RUN/$v
    [ -s "$d/socket" ] || { log "$v is not up"; rc=1; continue; }
    case $v in
      podman-machine) ssh_port=2222 host=192.168.127.254 ;;
      colima) ssh_port=60022 host=192.168.5.2 ;;
    esac
    nsenter --net="$(netns_of "$v")" -- timeout 25 python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1); s.settimeout(20)
try:
    c, _ = s.accept(); c.close()
except socket.timeout:
    pass
' "$port" &
    sleep 1
    out=$(nsenter --net="$(netns_of "$v")" -- timeout 30 ssh "${SSH_OPTS[@]}" -p "$ssh_port" root@127.0.0.1 \
      "busybox nc -w 5 $host $port </dev/null && echo host-loopback-reached; busybox nc -w 5 192.0.2.1 80 </dev/null && echo outside-REACHED || echo outside-unreachable" 2>/dev/null) || true
    wait
    log "$v: $(echo "$out" | tr '\n' ' ')"
    case $out in *host-loopback-reached*outside-unreachable*) ;; *) rc=1 ;; esac
  done
  return "$rc"
}

case "${1:-}" in
  up)
    shift
    trap 'rc=$?; [ $rc -eq 0 ] || { log "up failed: tearing down"; down; }; exit $rc' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    up "$@"
    ;;
  down) down ;;
  env) cat "$RUN/env" ;;
  build) tools; build ;;
  check) check ;;
  *) die "usage: $0 up [podman-machine|colima…]|down|env|build|check" ;;
esac
