"""Build dirs as a hostile or half-written tree leaves them, through `pipeline.scan` under the contract.

A case is a list of edits to a copy of the example's real build dir (built once, cached by a hash
of its inputs): `.vmlinux.cmd` and `vmlinux.lds` contents mutated token by token (dropped,
doubled, quoted, huge, unbalanced quotes, non-UTF-8 bytes, NULs, deep nesting, long expressions,
a byte-order mark), and files swapped for other kinds (missing, a directory, a FIFO, a symlink
loop, empty, unreadable). Each case is scanned with the model, and a few with the relink (they run
ld.lld). A case is plain JSON, so a reproducer is kept as a file under regressions/builddir/ and
replayed on every run; a long run of a file's content is written `{"repeat": text, "times": n}`.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract import holds, regression_cases
from reachls.pipeline import ScanOptions, scan
from toolchain import EXAMPLE, build_example, copy_example, need

FAMILY = "builddir"
CMD, SCRIPT, OBJECT = ".vmlinux.cmd", "arch/arm64/kernel/vmlinux.lds", "vmlinux.o"
#: What a case may replace by another kind of file ("." is the build dir itself).
ENTRIES = (CMD, SCRIPT, OBJECT, "arch", "arch/arm64/kernel", ".")
KINDS = ("missing", "directory", "fifo", "symlink-loop", "dangling-symlink", "empty", "unreadable")


# --- the real build dir, built once ---------------------------------------------------------------

def _toolchain_version() -> str:
    return "".join(subprocess.run([tool, "--version"], capture_output=True, text=True).stdout
                   for tool in ("clang", "ld.lld"))


@pytest.fixture(scope="session")
def built() -> Path:
    """The example's overflow build dir, cached under $REACHLS_CACHE by a hash of the example and toolchain."""
    need("clang", "ld.lld", "make")
    digest = hashlib.sha256(_toolchain_version().encode())
    for path in sorted(p for p in EXAMPLE.rglob("*") if p.is_file() and "out" not in p.relative_to(EXAMPLE).parts):
        digest.update(str(path.relative_to(EXAMPLE)).encode() + path.read_bytes())
    cache = Path(os.environ.get("REACHLS_CACHE", Path.home() / ".cache" / "reachls"))
    home = cache / f"fuzz-builddir-{digest.hexdigest()[:16]}"
    build = home / "hyp-lto" / "out" / "overflow"
    if not (build / OBJECT).is_file():
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        build_example(copy_example(home), "overflow")
    return build


def _copy(built: Path, destination: Path) -> Path:
    """The three files a scan reads, hard-linked (the object) or copied; an edit replaces, never writes through."""
    build = destination / "build"
    (build / "arch/arm64/kernel").mkdir(parents=True)
    os.link(built / OBJECT, build / OBJECT)
    for name in (CMD, SCRIPT):
        shutil.copy(built / name, build / name)
    return build


# --- reading without root's read override -----------------------------------------------------------

class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


_CAPABILITY_VERSION_3 = 0x20080522
_READ_OVERRIDES = (1 << 1) | (1 << 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH


@contextmanager
def without_read_override() -> Iterator[None]:
    """This thread without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH, so mode 000 stops even root.

    Capabilities are per thread and come back from the permitted set afterwards; a program the
    case runs gets root's full set again at exec. Without root this changes nothing (nor needs to)."""
    libc = ctypes.CDLL(None, use_errno=True)
    header, data = _CapHeader(_CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    if libc.capget(ctypes.byref(header), data) != 0 or not data[0].effective & _READ_OVERRIDES:
        yield
        return
    saved = data[0].effective
    data[0].effective &= ~_READ_OVERRIDES
    assert libc.capset(ctypes.byref(header), data) == 0, os.strerror(ctypes.get_errno())
    try:
        yield
    finally:
        data[0].effective = saved
        assert libc.capset(ctypes.byref(header), data) == 0, os.strerror(ctypes.get_errno())


# --- applying a case --------------------------------------------------------------------------------

def _content(spec: list) -> bytes:
    """Parts: a latin-1 string, or {"repeat": text, "times": n} for a long run."""
    return b"".join(part.encode("latin-1") if isinstance(part, str) else part["repeat"].encode("latin-1") * part["times"]
                    for part in spec)


def _replace(build: Path, entry: str, kind: str, unreadable: list[Path]) -> None:
    """Make `build/entry` a file of `kind`; nothing when an earlier edit made its directory something else."""
    path = build / entry
    if not path.parent.is_dir():
        return
    if kind == "unreadable":
        if path.exists():
            path.chmod(0)
            unreadable.append(path)
        return
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink-loop":
        path.symlink_to(path.name)
    elif kind == "dangling-symlink":
        path.symlink_to("nowhere")
    elif kind == "empty":
        path.write_bytes(b"")


def run_case(built: Path, case: dict) -> None:
    """Make the case's build dir, scan it under the contract, and clean up (restoring permissions)."""
    with tempfile.TemporaryDirectory(prefix="reachls-fuzz-builddir-") as tmp:
        build = _copy(built, Path(tmp))
        unreadable: list[Path] = []
        for edit in case["edits"]:
            if "content" in edit:
                target = build / edit["path"]
                if target.is_file():
                    target.unlink()
                    target.write_bytes(_content(edit["content"]))
            else:
                _replace(build if edit["path"] != "." else Path(tmp), edit["path"] if edit["path"] != "." else "build",
                         edit["kind"], unreadable)
        target = build / case.get("target", "")
        options = ScanOptions(engine=case["engine"])
        try:
            with without_read_override():
                holds(FAMILY, lambda: scan(target, options))
        finally:
            for path in unreadable:
                if path.exists():  # unless a later edit replaced it
                    path.chmod(0o755)


# --- mutators ---------------------------------------------------------------------------------------

def _tokens_of(built: Path, name: str, pattern: str) -> list[str]:
    return re.findall(pattern, (built / name).read_text(encoding="latin-1"))


_CMD_TOKENS = r"\S+|\s+"
_SCRIPT_TOKENS = r"[A-Za-z0-9_.$*]+|\s+|."
_ODD_BYTES = ["'", '"', "\\", "\x00", "\xe9", "\xff\xfe", "\xef\xbb\xbf", ";", "|", "&&", "$(", "`", "\n", "#"]


@st.composite
def token_edits(draw, tokens: list[str], huge: list) -> list:
    """The file's tokens with a few dropped, doubled, quoted, or joined by odd bytes or a huge run."""
    tokens = list(tokens)
    for _ in range(draw(st.integers(0, 4))):
        if not tokens:
            break
        at = draw(st.integers(0, len(tokens) - 1))
        action = draw(st.sampled_from(["drop", "double", "quote", "odd", "huge", "text"]))
        if action == "drop":
            del tokens[at]
        elif action == "double":
            tokens.insert(at, tokens[at])
        elif action == "quote":
            quote = draw(st.sampled_from(["'", '"']))
            tokens[at:at + 1] = [quote, tokens[at], draw(st.sampled_from([quote, ""]))]
        elif action == "odd":
            tokens.insert(at, draw(st.sampled_from(_ODD_BYTES)))
        elif action == "huge":
            tokens.insert(at, {"repeat": draw(st.sampled_from(huge)), "times": draw(st.sampled_from([5_000, 200_000, 3_000_000]))})
        else:
            tokens.insert(at, draw(st.text(st.characters(max_codepoint=255), max_size=12)))
    merged: list = []
    for token in tokens:  # adjacent strings as one part: a reproducer stays readable
        if isinstance(token, str) and merged and isinstance(merged[-1], str):
            merged[-1] += token
        else:
            merged.append(token)
    return merged


def cmd_edits(built: Path):
    tokens = _tokens_of(built, CMD, _CMD_TOKENS)
    line = (built / CMD).read_text(encoding="latin-1")
    head, _, command = line.partition(":= ")
    linker, *options = command.split()[:-3]  # without `-o vmlinux vmlinux.o`
    wrapped = st.sampled_from(["-q", "'-z max", "\\", "$(x"]).map(  # link-vmlinux.sh's flags, split again
        lambda extra: [f'{head}:= scripts/link-vmlinux.sh "{linker}" "{" ".join(options)} {extra}" ""\n'])
    many_flags = st.sampled_from([" -q", " -z norelro", " --no-undefined", " -EL"]).flatmap(
        lambda flag: st.sampled_from([10, 40_000, 500_000]).map(
            lambda times: [line.rstrip("\n"), {"repeat": flag, "times": times}, "\n"]))
    long_script = st.sampled_from([5_000, 100_000]).map(
        lambda n: [line.replace("./arch", "./" + "a" * n + "/../arch")])
    return st.one_of(token_edits(tokens, ["x", "-q ", "'", "\\\"", "\xe9"]), wrapped, many_flags, long_script).map(
        lambda content: {"path": CMD, "content": content})


def script_edits(built: Path):
    tokens = _tokens_of(built, SCRIPT, _SCRIPT_TOKENS)
    text = (built / SCRIPT).read_text(encoding="latin-1")
    assignment = "\n_fuzz = "
    nested = st.sampled_from([10, 100, 5_000]).map(
        lambda n: [text, assignment, {"repeat": "(", "times": n}, "1", {"repeat": ")", "times": n}, ";\n"])
    long_expression = st.sampled_from([50, 300, 1_000_000]).map(
        lambda n: [text, assignment, "1", {"repeat": "+1", "times": n}, ";\n"])
    prefixed = st.sampled_from(["\xef\xbb\xbf", "/* caf\xe9 */\n", "\xe9", "\x00"]).map(lambda prefix: [prefix, text])
    return st.one_of(token_edits(tokens, ["(", ")", "{", "}", "/*", "/* ", "a", "\xe9"]), nested, long_expression,
                     prefixed).map(lambda content: {"path": SCRIPT, "content": content})


def kind_edits():
    return st.builds(lambda path, kind: {"path": path, "kind": kind}, st.sampled_from(ENTRIES), st.sampled_from(KINDS))


def cases(built: Path):
    edit = st.one_of(cmd_edits(built), script_edits(built), kind_edits())
    return st.fixed_dictionaries({
        "edits": st.lists(edit, min_size=1, max_size=3),
        "engine": st.sampled_from(["model"] * 8 + ["auto", "relink"]),
        "target": st.sampled_from(["", "", "", OBJECT]),
    })


# --- the tests --------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def case_strategy(built: Path):
    return cases(built)


def test_mutated_build_dirs_keep_the_contract(built: Path, case_strategy) -> None:
    @given(case=case_strategy)
    def check(case: dict) -> None:
        run_case(built, case)

    check()


@pytest.mark.parametrize("reproducer", regression_cases(FAMILY), ids=lambda path: path.stem)
def test_regression(built: Path, reproducer: Path) -> None:
    run_case(built, json.loads(reproducer.read_text(encoding="utf-8")))


# --- the objects of a GCC kernel's vmlinux.a ----------------------------------------------------------

def _thin_archive(built: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A thin archive (as kbuild makes vmlinux.a) of one of the example's objects, and that object."""
    need("llvm-ar")
    member = tmp_path / "head.o"
    shutil.copy(built / "arch/arm64/kernel/head.o", member)
    archive = tmp_path / "vmlinux.a"
    subprocess.run(["llvm-ar", "cDPrST", str(archive), str(member)], check=True)
    return archive, member


def test_an_archive_member_that_is_a_fifo_is_refused_not_opened(built: Path, tmp_path: Path) -> None:
    from reachls.layout.members import linked_objects

    archive, member = _thin_archive(built, tmp_path)
    member.unlink()
    os.mkfifo(member)
    error = holds(FAMILY, lambda: linked_objects(("--whole-archive", str(archive))), seconds=5)
    assert "not a regular file" in str(error)


def test_an_archive_header_with_a_size_that_is_no_number_is_one_line(built: Path, tmp_path: Path) -> None:
    from reachls.layout.members import linked_objects

    archive, _ = _thin_archive(built, tmp_path)
    data = bytearray(archive.read_bytes())
    data[8 + 48:8 + 58] = b"size?     "  # the first member header's size field
    archive.write_bytes(bytes(data))
    error = holds(FAMILY, lambda: linked_objects(("--whole-archive", str(archive))))
    assert "malformed archive" in str(error)
