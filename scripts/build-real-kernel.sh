#!/usr/bin/env bash
# Builds Debian's linux-source-6.1 for arm64 (tinyconfig + KVM + DWARF4) the way a user does, as
# real inputs for the tests:
#   clang-lto           LLVM=1, ThinLTO, ld.lld
#   gcc                 CROSS_COMPILE=aarch64-linux-gnu-, GNU ld
#   clang-lto-overflow  the clang-lto tree plus one assembly file (real-kernel/out_of_range.S)
#                       rebuilt incrementally: vmlinux.o is relinked, the vmlinux link fails with
#                       ld.lld's out-of-range errors (kept in its build.log)
# Build trees are O= directories next to the extracted source they were built from, cached under
# ${REACHLS_CACHE:-$HOME/.cache/reachls}/kernel/<key>/, key = hash of the source package version,
# the config fragments, the overflow source, this script and the toolchain versions. A second run
# only prints the paths: one line per variant, "<variant> <build dir>".
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
fragments=$here/real-kernel
jobs=${REACHLS_KERNEL_JOBS:-2}
source_package=linux-source-6.1
source_tarball=/usr/src/linux-source-6.1.tar.xz
build_packages=("$source_package" flex bison bc libelf-dev libssl-dev cpio)

log() { echo "build-real-kernel: $*" >&2; }

install_missing_packages() {
    local missing=() package
    for package in "${build_packages[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return
    log "installing ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    # Another apt-get may hold the dpkg lock: wait for it rather than fail.
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq -o DPkg::Lock::Timeout=1800 \
        "${missing[@]}" >&2
}

cache_key() {
    {
        dpkg-query -W -f='${Version}\n' "$source_package"
        cat "$fragments"/*.config "$fragments"/out_of_range.S "$0"
        clang --version; ld.lld --version
        aarch64-linux-gnu-gcc --version; aarch64-linux-gnu-ld --version
    } | sha256sum | cut -c1-16
}

toolchain_args() {
    case $1 in
        clang-lto) echo "ARCH=arm64 LLVM=1" ;;
        gcc) echo "ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-" ;;
    esac
}

extract_source() {
    local src=$1
    [ -f "$src/.reachls-extracted" ] && return
    log "extracting $source_tarball"
    rm -rf "$src" && mkdir -p "$src"
    tar -xf "$source_tarball" -C "$src" --strip-components=1
    # The overflow file builds only when the make command line sets REACHLS_OUT_OF_RANGE=y, so the
    # pristine builds compile exactly Debian's sources.
    cp "$fragments/out_of_range.S" "$src/arch/arm64/kernel/reachls_out_of_range.S"
    echo 'obj-$(REACHLS_OUT_OF_RANGE) += reachls_out_of_range.o' >>"$src/arch/arm64/kernel/Makefile"
    touch "$src/.reachls-extracted"
}

# Each fragment line must survive olddefconfig: a dropped option is a build that tests nothing.
check_config() {
    local out=$1 fragment line
    shift
    for fragment in "$@"; do
        while read -r line; do
            case $line in CONFIG_*) grep -qx "$line" "$out/.config" \
                || { log "error: $line did not survive olddefconfig in $out/.config"; exit 1; } ;;
            esac
        done <"$fragment"
    done
}

build_variant() {
    local src=$1 out=$2 variant=$3 args start
    [ -f "$out/.reachls-built" ] && return
    args=$(toolchain_args "$variant")
    local fragment_files=("$fragments/common.config")
    [ -f "$fragments/$variant.config" ] && fragment_files+=("$fragments/$variant.config")
    rm -rf "$out" && mkdir -p "$out"
    log "building $variant in $out"
    start=$(date +%s)
    {
        # shellcheck disable=SC2086
        make -C "$src" O="$out" $args tinyconfig
        "$src/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" "${fragment_files[@]}"
        # shellcheck disable=SC2086
        make -C "$src" O="$out" $args olddefconfig
    } >"$out/build.log" 2>&1
    check_config "$out" "${fragment_files[@]}"
    # shellcheck disable=SC2086
    if ! make -C "$src" O="$out" $args -j"$jobs" vmlinux >>"$out/build.log" 2>&1; then
        log "error: $variant build failed, last lines of $out/build.log:"
        tail -n 20 "$out/build.log" >&2
        exit 1
    fi
    echo "$(($(date +%s) - start))" >"$out/.reachls-build-seconds"
    log "$variant built in $(cat "$out/.reachls-build-seconds") s"
    touch "$out/.reachls-built"
}

# A user's incremental rebuild after adding one file: copy of the clang-lto tree, make again.
build_overflow_variant() {
    local src=$1 base=$2 out=$3 start
    [ -f "$out/.reachls-built" ] && return
    rm -rf "$out"
    cp -a "$base" "$out"
    rm -f "$out/.reachls-built" "$out/.reachls-build-seconds"
    log "building clang-lto-overflow in $out"
    start=$(date +%s)
    # shellcheck disable=SC2046
    if make -C "$src" O="$out" $(toolchain_args clang-lto) REACHLS_OUT_OF_RANGE=y -j"$jobs" vmlinux \
        >"$out/build.log" 2>&1; then
        log "error: the overflow build linked; expected ld.lld out-of-range errors"
        exit 1
    fi
    if ! grep -q 'out of range' "$out/build.log" || [ ! -f "$out/vmlinux.o" ]; then
        log "error: the overflow build failed for another reason, last lines of $out/build.log:"
        tail -n 20 "$out/build.log" >&2
        exit 1
    fi
    echo "$(($(date +%s) - start))" >"$out/.reachls-build-seconds"
    log "clang-lto-overflow built in $(cat "$out/.reachls-build-seconds") s"
    touch "$out/.reachls-built"
}

main() {
    install_missing_packages
    local root key
    key=$(cache_key)
    root=${REACHLS_CACHE:-$HOME/.cache/reachls}/kernel/$key
    mkdir -p "$root"
    # One builder per key: the make target and the test fixture may start at the same time.
    exec 9>"$root/.lock"
    flock 9
    extract_source "$root/src"
    build_variant "$root/src" "$root/clang-lto" clang-lto
    build_variant "$root/src" "$root/gcc" gcc
    build_overflow_variant "$root/src" "$root/clang-lto" "$root/clang-lto-overflow"
    printf '%s %s\n' clang-lto "$root/clang-lto" gcc "$root/gcc" \
        clang-lto-overflow "$root/clang-lto-overflow"
}

main "$@"
