#!/usr/bin/env bash
# Installs (when missing) what lets a build embed the relay for aarch64 engines besides the
# host's own (docs/relay.md): Debian's rustc with the arm64 standard library (rustup cannot add
# the target without a network), the aarch64 C cross linker and static C library, and
# qemu-user-static, with which the tests run that relay under emulation. Idempotent; as root on
# Debian 12. Run it before the first build: the build script embeds what it finds then.
set -euo pipefail
cd /

log() { printf 'toolchains: %s\n' "$*" >&2; }

need=()
[ -x /usr/bin/rustc ] || need+=(rustc)
[ -d /usr/lib/rustlib/aarch64-unknown-linux-gnu/lib ] || need+=(libstd-rust-dev:arm64)
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || need+=(gcc-aarch64-linux-gnu)
[ -f /usr/aarch64-linux-gnu/lib/libc.a ] || need+=(libc6-dev-arm64-cross)
command -v qemu-aarch64-static >/dev/null 2>&1 || need+=(qemu-user-static)
if [ "${#need[@]}" -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  log "missing ${need[*]} and not root: install them with apt-get (after dpkg --add-architecture arm64)"
  exit 1
fi
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  dpkg --add-architecture arm64
fi
log "installing ${need[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
