"""The build's final link command, reduced to what is safe and relevant to replay in a relink.

A recorded link line is read the way the linker itself reads it: through an option table that
says, for every option, how its value is spelled — a plain flag, joined (`--build-id=sha1`),
separate or joined with `=` (`--defsym a=1`, `--defsym=a=1`), or, for one-letter options,
joined or separate (`-zmax-page-size=4096`, `-z max-page-size=4096`); long options take one
dash or two. An option and its value are therefore kept or dropped together: dropping
`-mllvm` but not its value would hand the value to the linker as the next option.

Only options that change where sections land (or which symbols resolve) are replayed. The
output, the map, the script and the input files are the relink's own; everything else —
options that write files, load plugins, talk to the code generator, or change diagnostics —
is dropped and listed, so a report can say what the relink did not replay. ld.lld and GNU ld
share most options; each has a few of its own, and an option the linker that runs does not
know is dropped rather than passed on to fail the link.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path

from ..errors import ReachlsError


class Form(Enum):
    """How an option's value is spelled (the kinds of ld.lld's and GNU ld's option tables)."""

    FLAG = "flag"  # --gc-sections
    JOINED = "joined"  # --pack-dyn-relocs=relr only
    OPTIONAL = "optional"  # --build-id or --build-id=sha1: `--build-id sha1` is the flag and an input file
    SEPARATE = "separate"  # --defsym a=1 or --defsym=a=1
    SHORT = "short"  # one letter, value joined or separate: -zmax-page-size=4096, -z max-page-size=4096


class Action(Enum):
    KEEP = "keep"  # layout-relevant and harmless: replayed
    SCRIPT = "script"  # the linker script: resolved against the build dir, passed as -T
    OWN = "own"  # output, map, inputs: the relink supplies its own
    DROP = "drop"  # not replayed, listed in `dropped`


def _options(form: Form, action: Action, names: str) -> dict[str, tuple[Form, Action]]:
    return {name: (form, action) for name in names.split()}


_KEEP, _DROP, _OWN = Action.KEEP, Action.DROP, Action.OWN

#: Options both linkers know with the same spelling and meaning.
_SHARED = {
    **_options(Form.FLAG, _KEEP, "EL EB X x discard-locals discard-all discard-none no-undefined pic-veneer "
               "fix-cortex-a53-843419 no-relax relax pie no-pie shared Bshareable static "
               "Bstatic non_shared dn Bdynamic dy call_shared no-dynamic-linker gc-sections no-gc-sections n "
               "nmagic N omagic no-omagic Bsymbolic Bsymbolic-functions emit-relocs q export-dynamic E "
               "no-export-dynamic r relocatable no-apply-dynamic-relocs sort-common eh-frame-hdr "
               "no-eh-frame-hdr allow-multiple-definition"),
    **_options(Form.FLAG, _OWN, "whole-archive no-whole-archive start-group end-group ( ) as-needed "
               "no-as-needed"),
    **_options(Form.SEPARATE, _KEEP, "defsym entry undefined soname dynamic-linker rpath wrap exclude-libs "
               "sort-section hash-style orphan-handling unresolved-symbols Ttext Tdata Tbss Ttext-segment "
               "export-dynamic-symbol"),
    **_options(Form.SEPARATE, _DROP, "mllvm plugin plugin-opt dependency-file version-script dynamic-list "
               "retain-symbols-file symbol-ordering-file just-symbols trace-symbol sysroot format "
               "auxiliary filter compress-debug-sections error-limit call-graph-ordering-file init fini"),
    **_options(Form.SEPARATE, _OWN, "output Map library library-path"),
    "script": (Form.SEPARATE, Action.SCRIPT),
    **_options(Form.JOINED, _KEEP, "section-start"),
    "build-id": (Form.OPTIONAL, _KEEP),
    **_options(Form.SHORT, _KEEP, "z m e u h O"),
    **_options(Form.SHORT, _DROP, "y R F f b"),
    **_options(Form.SHORT, _OWN, "o l L"),
    "T": (Form.SHORT, Action.SCRIPT),
}

#: ld.lld's own (lld/ELF/Options.td), beyond the shared ones.
_LLD = {
    **_SHARED,
    **_options(Form.FLAG, _KEEP, "use-android-relr-tags apply-dynamic-relocs Bno-symbolic execute-only no-rosegment "
               "rosegment"),
    **_options(Form.SEPARATE, _KEEP, "image-base"),
    **_options(Form.SEPARATE, _DROP, "reproduce why-extract time-trace-file opt-remarks-filename "
               "thinlto-cache-dir lto-sample-profile"),
    **_options(Form.JOINED, _KEEP, "pack-dyn-relocs icf"),
    **_options(Form.JOINED, _DROP, "lto-O lto-partitions thinlto-jobs threads thinlto-cache-policy "
               "thinlto-prefix-replace thinlto-object-suffix-replace plugin-opt-path"),
}

#: GNU ld's own (`ld --help`; some only in the Arm, AArch64 or PowerPC targets), beyond the shared ones.
_GNU = {
    **_SHARED,
    **_options(Form.FLAG, _KEEP, "fix-cortex-a53-835769 be8 fix-cortex-a8 no-fix-cortex-a8 target1-rel "
               "target1-abs no-tls-optimize no-tls-get-addr-optimize no-plt-align plt-align"),
    **_options(Form.SEPARATE, _KEEP, "require-defined"),
    **_options(Form.JOINED, _KEEP, "stub-group-size package-metadata"),
    **_options(Form.SHORT, _KEEP, "I"),
    **_options(Form.SHORT, _DROP, "A G c"),
}

TABLES = {"lld": _LLD, "gnu": _GNU}


@dataclass(frozen=True)
class LinkCommand:
    """The build's final link, reduced to what is safe and relevant to re-run with `flavour`'s table.

    `argv` and `base_dir` keep the recorded command, so it can be filtered again for the other
    linker (`for_flavour`) when the relink runs another linker than the build's.
    """

    linker: str
    flags: tuple[str, ...]
    script: Path | None
    dropped: tuple[str, ...] = field(default=())
    flavour: str = "lld"
    argv: tuple[str, ...] = field(default=())
    base_dir: Path = Path(".")
    #: The input files (resolved) and the options that group them (`--whole-archive`, `--start-group`),
    #: in order: what a relink of the objects themselves reads.
    inputs: tuple[str, ...] = field(default=())

    def for_flavour(self, flavour: str) -> LinkCommand:
        """The same recorded command filtered through `flavour`'s option table."""
        if flavour == self.flavour:
            return self
        refiltered = safe_link_command(list(self.argv), self.base_dir, flavour) if self.argv else \
            LinkCommand(self.linker, (), self.script, (), flavour)
        return replace(refiltered, script=self.script)


def build_flavour(linker: str | None) -> str:
    """`gnu` for a GNU ld (`*-ld`, `ld.bfd`, `ld`), else `lld`."""
    name = (linker or "").rsplit("/", 1)[-1]
    return "gnu" if name.endswith(("-ld", "ld.bfd")) or name == "ld" else "lld"


def safe_link_command(tokens: list[str], base_dir: Path, flavour: str | None = None) -> LinkCommand:
    """Keep the linker and the layout-relevant options of an already split command line.

    `flavour` (`lld`/`gnu`) names the option table to read it with; by default the one of the
    linker the command runs. Options are matched as the linkers match them: the whole name
    first (`-mllvm`, `-Map`, `-Ttext`), then a one-letter option with its value joined
    (`-maarch64elf`, `-T./vmlinux.lds`).
    """
    if not tokens:
        raise ReachlsError("empty link command")
    linker, rest = tokens[0], tokens[1:]
    flavour = flavour or build_flavour(linker)
    table = TABLES[flavour]
    flags: list[str] = []
    dropped: list[str] = []
    inputs: list[str] = []
    script: Path | None = None
    i = 0
    while i < len(rest):
        token = rest[i]
        if not token.startswith("-") or token == "-":
            if token.startswith("@"):  # a response file: more options the relink cannot vet
                dropped.append(token)
            else:
                inputs.append(str(_resolve(token, base_dir)))
            i += 1
            continue
        option, value = _match(token, table)
        if option is None:
            dropped.append(token)
            i += 1
            continue
        form, action = table[option]
        words = [token]
        if form in (Form.SEPARATE, Form.SHORT) and value is None:
            if i + 1 >= len(rest):
                raise ReachlsError(f"link command ends with {token} but no value for it", " ".join(tokens))
            value = rest[i + 1]
            words.append(value)
        i += len(words)
        if action is Action.KEEP:
            flags += words
        elif action is Action.OWN and form is Form.FLAG:
            inputs.append(token)
        elif action is Action.DROP:
            dropped.append(" ".join(words))
        elif action is Action.SCRIPT:
            script = _resolve(value, base_dir)
    return LinkCommand(linker, tuple(flags), script, tuple(dropped), flavour, tuple(tokens), base_dir, tuple(inputs))


def _match(token: str, table: dict[str, tuple[Form, Action]]) -> tuple[str | None, str | None]:
    """The option `token` starts, and its joined value (None when there is none in `token`)."""
    name = token.lstrip("-")
    if name in table and table[name][0] is not Form.JOINED:
        return name, None
    head, eq, tail = name.partition("=")
    if eq and head in table and table[head][0] in (Form.JOINED, Form.OPTIONAL, Form.SEPARATE):
        return head, tail
    if not token.startswith("--") and len(name) > 1 and table.get(name[:1], (None,))[0] is Form.SHORT:
        return name[:1], name[1:]
    return None, None


def _resolve(path: str, base_dir: Path) -> Path:
    candidate = Path(path)
    return candidate if candidate.is_absolute() else base_dir / candidate


LINKERS = ("auto", "lld", "gnu")


def linker_flavour(requested: str, build_linker: str | None) -> str:
    """`lld` or `gnu`: as asked, else from the build's link command (`ld.lld` vs `*-ld`/`ld.bfd`)."""
    return requested if requested != "auto" else build_flavour(build_linker)
