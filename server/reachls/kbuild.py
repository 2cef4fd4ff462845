"""What a build directory holds: the artefact to analyse, the linker script, the final link command.

Kernel build dirs record each command in `.<target>.cmd` files (`savedcmd_vmlinux := …`, older
kernels `cmd_vmlinux := …`); newer kernels link through `scripts/link-vmlinux.sh "LD" "LDFLAGS"
"LDFLAGS_vmlinux"` and add `-T arch/<arch>/kernel/vmlinux.lds` inside that script. The line is
split with `shlex` and never run by a shell.

A build dir may be half-written or hostile: every file is checked to be a regular file before it
is opened (a FIFO would block the open forever), a file or directory that cannot be read is one
error naming it, and a link line is refused past `MAX_LINK_LINE_CHARS` (`shlex` takes time
quadratic in a token's length: a 10 MB line would take hours; a kernel's is a few hundred bytes).
"""

from __future__ import annotations

import itertools
import shlex
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import ReachlsError
from .layout.linkopts import LinkCommand, safe_link_command
from .logparse import looks_like_log

ARTEFACTS = ("vmlinux.o", "vmlinux")
LOG_NAME = "build.log"  # the final link's output, as the example (and `make ... 2>&1 | tee build.log`) keeps it
#: Longest link line read from a `.cmd` file, and largest `.cmd` file: far above any kernel's.
MAX_LINK_LINE_CHARS = 128 * 1024
MAX_CMD_FILE_BYTES = 16 * 1024 * 1024
_SHOWN_NAME_CHARS = 200


@dataclass(frozen=True)
class BuildInputs:
    """Everything found for one scan: the ELF to read, and how the final link is done.

    `links_objects`: the build's final link reads the objects themselves (`vmlinux.a`), not the
    `vmlinux.o` being scanned: kbuild links vmlinux.o into vmlinux only for Clang LTO (and x86
    IBT) builds. `ld -r` merged the objects' sections of one name into one section, aligned to
    its most aligned member, which the real link lays out object by object instead.
    """

    artefact: Path
    build_dir: Path | None
    script: Path | None
    link_command: LinkCommand | None
    links_objects: bool = False
    partial_link: LinkCommand | None = None  # the `ld -r` that made vmlinux.o (.vmlinux.o.cmd), when links_objects


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """An OS error (unreadable, a name too long, a symlink loop) as one line naming its file."""
    try:
        yield
    except OSError as exc:
        name = str(exc.filename or path)
        shown = name if len(name) <= _SHOWN_NAME_CHARS else f"{name[:_SHOWN_NAME_CHARS // 2]}...{name[-_SHOWN_NAME_CHARS // 2:]}"
        raise ReachlsError(f"cannot read: {exc.strerror or exc}", shown) from None


def find_inputs(path: Path, script: Path | None = None) -> BuildInputs:
    """Resolve a scan PATH (a build dir or an ELF file) into the inputs of the analysis."""
    with _reading(path):
        return _find_inputs(path, script)


def _find_inputs(path: Path, script: Path | None) -> BuildInputs:
    if not path.exists():
        raise ReachlsError("no such file or directory", str(path))
    path = path.resolve()  # the relink runs in a temp dir: every path it is given must be absolute
    if path.is_dir():
        artefact = next((path / name for name in ARTEFACTS if (path / name).exists()), None)
        if artefact is None:
            raise ReachlsError(f"no {' or '.join(ARTEFACTS)} in this build directory", str(path))
        build_dir = path
    else:
        artefact, build_dir = path, path.parent if (path.parent / ".vmlinux.cmd").exists() else None
    _require_regular(artefact)
    command = read_link_command(build_dir) if build_dir else None
    if script is None:
        script = command.script if command and command.script else _default_script(build_dir)
    if script is not None and not script.is_file():
        raise ReachlsError("linker script not found", str(script))
    links_objects = artefact.name == "vmlinux.o" and build_dir is not None and _links_objects(build_dir)
    partial = read_link_command(build_dir, "vmlinux.o") if links_objects else None
    return BuildInputs(artefact, build_dir, script, command, links_objects, partial)


def _require_regular(path: Path) -> None:
    """Refuse what is not a regular file before anything opens it (opening a FIFO blocks)."""
    if not stat.S_ISREG(path.stat().st_mode):
        raise ReachlsError("not a regular file", str(path))


_VMLINUX_O_LINKED_WITH = ("CONFIG_LTO_CLANG=y", "CONFIG_X86_KERNEL_IBT=y")


def _links_objects(build_dir: Path) -> bool:
    """Whether kbuild's final link reads vmlinux.a rather than vmlinux.o (scripts/link-vmlinux.sh)."""
    config = build_dir / "include/config/auto.conf"
    if not (build_dir / "vmlinux.a").is_file() or not config.is_file():
        return False
    return not any(line.strip() in _VMLINUX_O_LINKED_WITH for line in config.read_text(errors="replace").splitlines())


def find_log(path: Path, name: str | None = None) -> Path | None:
    """The linker log a scan PATH asks for, or None when the ELF artefact is to be read.

    A build dir's log (`name`, default `build.log`; next to PATH when PATH is an ELF file) is
    read when asked for (`--log`), or when the dir has no vmlinux.o/vmlinux but has `build.log`.
    A file that is not ELF is a log when asked for, or when it holds a linker diagnostic.
    """
    with _reading(path):
        return _find_log(path, name)


def _find_log(path: Path, name: str | None) -> Path | None:
    if not path.exists():
        return None
    if path.is_file():
        try:
            with open(path, "rb") as stream:
                is_elf = stream.read(4) == b"\x7fELF"
        except OSError:
            return None  # reading the artefact says what is wrong
        if not is_elf:
            return path.resolve() if name is not None or looks_like_log(path) else None
    directory = path if path.is_dir() else path.parent
    if name is not None:
        log = directory / name
        if not log.is_file():
            raise ReachlsError(f"no linker log {name} in this build directory", str(directory))
        return log.resolve()
    if path.is_dir() and not any((path / a).is_file() for a in ARTEFACTS) and (path / LOG_NAME).is_file():
        return (path / LOG_NAME).resolve()
    return None


def _default_script(build_dir: Path | None) -> Path | None:
    """`arch/*/kernel/vmlinux.lds`, listed so that an unreadable `arch/` is an error, not "no script"."""
    if build_dir is None or not (build_dir / "arch").is_dir():
        return None
    scripts = (arch / "kernel/vmlinux.lds" for arch in sorted((build_dir / "arch").iterdir()))
    return next((script for script in scripts if script.is_file()), None)


def read_link_command(build_dir: Path, target: str = "vmlinux") -> LinkCommand | None:
    """The link that made `target` (the final link, or `vmlinux.o`'s `ld -r`) from `.<target>.cmd`."""
    cmd_file = build_dir / f".{target}.cmd"
    if not cmd_file.exists():
        return None
    _require_regular(cmd_file)
    if cmd_file.stat().st_size > MAX_CMD_FILE_BYTES:
        raise ReachlsError(f"larger than {MAX_CMD_FILE_BYTES >> 20} MiB: not a kbuild command file", str(cmd_file))
    for line in cmd_file.read_text(errors="replace").splitlines():
        name, sep, value = line.partition(":=")
        if sep and name.strip() in (f"savedcmd_{target}", f"cmd_{target}"):
            return parse_link_line(value, build_dir, str(cmd_file))
    return None


def parse_link_line(line: str, build_dir: Path, where: str) -> LinkCommand:
    """Split a recorded link line, unwrapping `link-vmlinux.sh "LD" "FLAGS" "FLAGS"`."""
    if len(line) > MAX_LINK_LINE_CHARS:
        raise ReachlsError(f"link command of {len(line)} characters (more than {MAX_LINK_LINE_CHARS}): "
                           "not a kernel's link line", where)
    try:
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        tokens = list(itertools.takewhile(lambda token: token.strip(";&|"), lexer))  # the first command only
        if tokens and tokens[0].endswith("link-vmlinux.sh"):
            tokens = [tokens[1], *(part for arg in tokens[2:] for part in shlex.split(arg))] if len(tokens) > 1 else []
    except ValueError as exc:
        raise ReachlsError(f"cannot parse the link command: {exc}", where) from None
    if not tokens:
        raise ReachlsError("empty link command", where)
    return safe_link_command(tokens, build_dir)
