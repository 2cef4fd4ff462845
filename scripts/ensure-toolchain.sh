#!/usr/bin/env bash
# Installs what the tests drive when missing: clang/lld/llvm, GNU binutils and GCC for aarch64
# (the oracle for source lines, and the second compiler fixes must build with), GNU binutils for
# 32-bit Arm, RISC-V 64, PowerPC64 and MIPS (GNU ld: the second linker the reach tables are checked
# against; gas: the Arm assembler that keeps narrow Thumb branches), and Neovim. One MIPS binutils
# links every MIPS ABI and byte order (-m elf32btsmip, elf64ltsmip, ...); the mips64el one is
# installed too for its tools' default (n64, little endian).
set -euo pipefail
needed=(clang ld.lld llvm-objdump llvm-readelf llvm-nm aarch64-linux-gnu-addr2line aarch64-linux-gnu-gcc nvim
        arm-linux-gnueabihf-ld riscv64-linux-gnu-ld powerpc64le-linux-gnu-ld mips-linux-gnu-ld
        mips64el-linux-gnuabi64-ld)
missing=()
for tool in "${needed[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing toolchain (missing: ${missing[*]})"
if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: missing ${missing[*]} and no apt-get to install them" >&2
    exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq clang lld llvm binutils-aarch64-linux-gnu gcc-aarch64-linux-gnu neovim \
    binutils-arm-linux-gnueabihf binutils-riscv64-linux-gnu binutils-powerpc64le-linux-gnu \
    binutils-mips-linux-gnu binutils-mips64el-linux-gnuabi64 >/dev/null
