"""The package's imports go one way: each module imports only from its own layer or the layers
below it, at module level, and no two modules import each other (directly or round a cycle).

The layers are ARCHITECTURE.md's; a new module must be given one here, which is where its
place in the house is decided.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from toolchain import ROOT

PACKAGE = ROOT / "server" / "reachls"

#: Bottom first. A module is named by its path in the package; a package name covers its modules.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("values", ("__init__", "errors", "record", "edits", "asmfile", "progress")),
    ("readers", ("elf", "dwarfline", "sourcemap")),
    ("arch", ("arch",)),
    ("layout", ("layout",)),
    ("inputs", ("logparse", "kbuild")),
    ("records", ("records", "analysis", "decode")),
    ("modes", ("stages", "linklog")),
    ("pipeline", ("pipeline",)),
    ("editor", ("grammars", "sources", "fixes", "messages", "anchor", "findings", "lenses")),
    ("front ends", ("report", "baseline", "sarif", "diff", "diffreport", "history", "trend_report", "picture",
                    "cliprogress", "cli", "__main__", "lsp")),
)

#: Imports a function may make: the modules of one command each (the language server, SARIF, `diff`,
#: the picture, the history report), which a scan from the command line never loads (start-up counts
#: in a build loop: SARIF alone loads tree-sitter); and the terminal's progress line, which loads tqdm
#: (~20 ms), only when stderr is a terminal and the report is text, never in a pipe or CI.
DEFERRED = {("cli", "lsp.server"), ("cli", "sarif"), ("cli", "diff"), ("cli", "diffreport"), ("cli", "picture"),
            ("cli", "trend_report"), ("cli", "cliprogress")}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def _layer(module: str) -> int:
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(f"module reachls.{module} has no layer: add it to LAYERS in {Path(__file__).name}")


def _imports(path: Path, module: str) -> list[tuple[str, int, bool]]:
    """(imported reachls module, line, at module level) for every import of the package."""
    tree = ast.parse(path.read_text(), str(path))
    top_level = {id(node) for node in tree.body} | {
        id(inner) for node in tree.body if isinstance(node, ast.If) for inner in node.body}  # `if TYPE_CHECKING:`
    package = module.split(".")[:-1] if path.name != "__init__.py" else module.split(".")
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1] if node.level > 1 else package
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            elif node.module and node.module.split(".")[0] == "reachls":
                target = node.module.removeprefix("reachls").lstrip(".")
            else:
                continue
            names = [f"{target}.{a.name}" if target else a.name for a in node.names]
            # `from . import aarch64` imports a module; `from .record import Status` a name of one
            for name in names:
                candidate = name if _is_module(name) else target
                found.append((candidate or "__init__", node.lineno, id(node) in top_level))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "reachls":
                    found.append((alias.name.removeprefix("reachls").lstrip(".") or "__init__", node.lineno,
                                  id(node) in top_level))
    return found


def _is_module(name: str) -> bool:
    path = PACKAGE.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _graph() -> dict[str, list[tuple[str, int, bool]]]:
    return {_module_name(path): _imports(path, _module_name(path)) for path in sorted(PACKAGE.rglob("*.py"))}


def test_every_import_goes_down_or_across_at_module_level() -> None:
    upward, deferred = [], []
    for module, imports in _graph().items():
        for target, line, top in imports:
            if _layer(target) > _layer(module):
                upward.append(f"reachls.{module}:{line} imports reachls.{target} "
                              f"({LAYERS[_layer(module)][0]} → {LAYERS[_layer(target)][0]})")
            if not top and (module, target) not in DEFERRED:
                deferred.append(f"reachls.{module}:{line} imports reachls.{target} inside a function")
    assert not upward, "imports up the layers:\n" + "\n".join(upward)
    assert not deferred, "imports not at module level:\n" + "\n".join(deferred)


def test_no_import_cycle() -> None:
    graph = {module: sorted({t for t, _, top in imports if top and t != module})
             for module, imports in _graph().items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in graph.get(module, []):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[module] = 2
        path.pop()
        return None

    for module in graph:
        if module not in state and (cycle := visit(module)):
            pytest.fail("import cycle: " + " → ".join(f"reachls.{m}" for m in cycle))


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The parse above must see relative imports for what they are, or both tests pass vacuously."""
    imports = dict((t, top) for t, _, top in _imports(PACKAGE / "arch" / "base.py", "arch.base"))
    assert imports.get("record") is True and imports.get("elf") is True
    assert _layer("arch.base") > _layer("record") and _layer("report") > _layer("pipeline")
    found = _imports(PACKAGE / "cli.py", "cli")
    assert ("lsp.server", False) in {(t, top) for t, _, top in found}
