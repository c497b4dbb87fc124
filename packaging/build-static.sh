#!/usr/bin/env bash
# Build vnetprobe as one fully static x86_64 Linux binary (musl, release profile).
#
# Usage: packaging/build-static.sh [extra cargo build args...]
#
# - Installs the rustup target x86_64-unknown-linux-musl and Debian's musl-tools
#   (ring's C code needs musl-gcc) when they are missing.
# - Honours CARGO_TARGET_DIR (and any target-dir set in cargo config).
# - Refuses to finish if the result has an ELF interpreter or NEEDED entries.
# - Progress goes to stderr; the LAST line of stdout is the binary's path, so
#   callers can do: bin=$(packaging/build-static.sh | tail -n1)
set -euo pipefail

readonly TARGET=x86_64-unknown-linux-musl
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf 'build-static: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# A relative CARGO_TARGET_DIR means "relative to where I ran this": pin it
# before changing directory.
if [[ -n "${CARGO_TARGET_DIR:-}" && "${CARGO_TARGET_DIR}" != /* ]]; then
    CARGO_TARGET_DIR="$PWD/$CARGO_TARGET_DIR"
    export CARGO_TARGET_DIR
fi
cd "$root"

command -v cargo >/dev/null || die "cargo not found in PATH"

if command -v rustup >/dev/null; then
    if ! rustup target list --installed | grep -qx "$TARGET"; then
        log "installing rust target $TARGET"
        rustup target add "$TARGET" >&2
    fi
else
    log "rustup not found: assuming the toolchain already has $TARGET"
fi

if ! command -v musl-gcc >/dev/null; then
    log "musl-gcc not found: installing musl-tools"
    if [[ $(id -u) -ne 0 ]]; then
        die "musl-tools is missing; run: sudo apt-get install -y musl-tools"
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends musl-tools >&2; then
        apt-get update >&2
        apt-get install -y --no-install-recommends musl-tools >&2
    fi
fi

# musl targets link statically by default; say so explicitly so a toolchain
# or config default can never hand us a dynamically linked musl binary.
# The target-scoped variable leaves host build scripts and proc-macros alone
# (a global RUSTFLAGS would also force a rebuild of everything).
flags_var=CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS
if [[ -n "${RUSTFLAGS:-}" ]]; then
    # cargo ignores the target-scoped variable when RUSTFLAGS is set.
    case " $RUSTFLAGS " in
        *crt-static*) ;;
        *) RUSTFLAGS="$RUSTFLAGS -C target-feature=+crt-static"; export RUSTFLAGS ;;
    esac
else
    case " ${!flags_var:-} " in
        *crt-static*) ;;
        *) export "$flags_var=${!flags_var:-} -C target-feature=+crt-static" ;;
    esac
fi

log "cargo build --release --locked --target $TARGET $*"
cargo build --release --locked --target "$TARGET" --bin vnetprobe "$@" >&2

# Ask cargo where it put things: this covers CARGO_TARGET_DIR, build.target-dir
# in any .cargo/config.toml, and the default.
target_dir=$(cargo metadata --format-version 1 --no-deps --offline 2>/dev/null |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[[ -n "$target_dir" ]] || target_dir="${CARGO_TARGET_DIR:-$root/target}"
bin="$target_dir/$TARGET/release/vnetprobe"
[[ -x "$bin" ]] || die "expected binary not found at $bin"

# Static means: no program interpreter and no shared-library dependencies.
if command -v readelf >/dev/null; then
    if readelf -lW "$bin" | grep -q 'INTERP'; then
        die "$bin has an ELF interpreter (dynamically linked)"
    fi
    if readelf -dW "$bin" | grep -q '(NEEDED)'; then
        die "$bin needs shared libraries: $(readelf -dW "$bin" | grep '(NEEDED)' | tr -s ' ')"
    fi
else
    log "readelf not found (binutils): skipping the static-link check"
fi

size=$(stat -c %s "$bin")
# The checksum to publish with the binary (setup-vnetprobe.sh --sha256 checks it).
(cd "$(dirname "$bin")" && sha256sum vnetprobe >vnetprobe.sha256)
log "built $bin ($((size / 1024)) KiB, static); sha256 $(cut -d' ' -f1 "$bin.sha256") in $bin.sha256"
printf '%s\n' "$bin"
