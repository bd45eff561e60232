#!/usr/bin/env bash
# Installs what `make test` needs and is missing: the pinned Rust toolchain's target and components,
# QEMU 10 (qemu-system-aarch64 with raspi4b) from bookworm-backports, dtc, and the arm64 package
# cache (Debian's cloud kernel, busybox-static, Raspberry Pi DTB) used by the integration tests.
# Idempotent and quiet: a second run does nothing and prints nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
APT_UPDATED=0
apt_update() { [ "$APT_UPDATED" = 1 ] || { $SUDO apt-get update -qq >/dev/null; APT_UPDATED=1; }; }

# --- Rust: the toolchain file alone does not reliably pull the target and components.
toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
# el2visor itself is built soft-float (it must never touch the FP/SIMD registers, which hold the
# guest's state at EL2); the probe guest uses the plain bare-metal target.
for target in aarch64-unknown-none aarch64-unknown-none-softfloat; do
    if ! rustup target list --installed --toolchain "$toolchain" 2>/dev/null | grep -qx "$target"; then
        log "installing Rust $toolchain target $target"
        rustup toolchain install "$toolchain" --profile minimal >/dev/null 2>&1 || true
        rustup target add --toolchain "$toolchain" "$target" >/dev/null
    fi
done
for comp in rust-src llvm-tools clippy; do
    if ! rustup component list --installed --toolchain "$toolchain" 2>/dev/null | grep -q "^$comp"; then
        log "installing Rust component $comp"
        rustup component add --toolchain "$toolchain" "$comp" >/dev/null
    fi
done

# --- QEMU 10 from bookworm-backports (the stock bookworm QEMU has no raspi4b).
if ! { command -v qemu-system-aarch64 >/dev/null && qemu-system-aarch64 -M help 2>/dev/null | grep -q raspi4b; }; then
    src=/etc/apt/sources.list.d/debian.sources
    bp=/etc/apt/sources.list.d/el2visor-backports.sources
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list.d/; then
        uri=$(sed -n 's/^URIs: *//p' "$src" | grep -v security | head -n1)
        [ -n "$uri" ] || { log "no URIs: line in $src to reuse for bookworm-backports"; exit 1; }
        log "adding bookworm-backports from the existing apt source"
        printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            "$uri" | $SUDO tee "$bp" >/dev/null
        APT_UPDATED=0
    fi
    apt_update
    log "installing qemu-system-arm from bookworm-backports"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports \
        qemu-system-arm >/dev/null
fi

# --- dtc to inspect and patch device trees in tests.
if ! command -v dtc >/dev/null; then
    apt_update
    log "installing device-tree-compiler"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq device-tree-compiler >/dev/null
fi

# --- gdb-multiarch: the client of el2visor's GDB stub in tests/qemu/gdb.rs.
if ! command -v gdb-multiarch >/dev/null; then
    apt_update
    log "installing gdb-multiarch"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gdb-multiarch >/dev/null
fi
