"""The client's settings, checked key by key.

Settings arrive as JSON (initializationOptions, or the `reachls` section of
didChangeConfiguration) from whatever the user typed into a settings file. A key whose value has
the wrong type or is out of range keeps its previous value, the other keys are applied, and the
user is told once per change which keys were refused and why (`SettingsRead.refused`). Types are
checked by a cattrs converter that converts nothing (cattrs would turn "3" into 3 and "abc" into
['a', 'b', 'c']), so a message names the exact key, e.g. `reachls.pathMappings[0].to`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypedDict, get_args, get_origin

import cattrs
from cattrs.cols import list_structure_factory

from ..history import DEFAULT_KEEP, MAX_KEEP
from ..record import DEFAULT_THRESHOLD

DEFAULT_SEVERITY = {"overflow": "error", "veneer": "information", "at-risk": "warning", "fragile": "information"}
Engine = Literal["auto", "relink", "model"]
Linker = Literal["auto", "lld", "gnu"]
Status = Literal["overflow", "veneer", "at-risk", "fragile"]
Severity = Literal["error", "warning", "information", "hint"]
PathMapping = TypedDict("PathMapping", {"from": str, "to": str})
MAX_DISCOVERY_DEPTH = 64
MAX_DEBOUNCE_SECONDS = 3600.0


@dataclass(frozen=True)
class Settings:
    """What the server works with; `allow_workspace_linker`: run a linker that lies inside a
    workspace folder (the build's own wrapper, a toolchain in the tree) — off, as opening a tree
    must not run a program from it. `history`: record every completed scan in its build dir's
    history (`history_builds` kept); `code_lens`: a lens above each function a reported reference
    is in or goes to (off: opt-in)."""

    build_dirs: tuple[Path, ...] = ()
    threshold: float = DEFAULT_THRESHOLD
    engine: str = "auto"
    linker: str = "auto"
    path_mappings: tuple[tuple[str, str], ...] = ()
    severity: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SEVERITY))
    discovery_depth: int = 4
    debounce_seconds: float = 0.5
    allow_workspace_linker: bool = False
    history: bool = True
    history_builds: int = DEFAULT_KEEP
    code_lens: bool = False


@dataclass(frozen=True)
class SettingsRead:
    settings: Settings
    refused: str | None  # one line naming each refused key and why; None when all were taken


class _Refused(ValueError):
    """A value of the wrong JSON type or outside its enum, in words for the user."""


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:40] + "…"


def _exactly(kind: type, what: str) -> Callable[[Any, Any], Any]:
    def structure(value: Any, _: Any) -> Any:
        if not isinstance(value, kind) or (type(value) is bool and kind is not bool):
            raise _Refused(f"expected {what}, got {_shown(value)}")
        return value
    return structure


def _number(value: Any, _: Any) -> float:
    if type(value) is bool or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _Refused(f"expected a number, got {_shown(value)}")
    return float(value)


def _list_factory(list_type: Any, converter: cattrs.Converter) -> Callable[[Any, Any], list[Any]]:
    items = list_structure_factory(list_type, converter)

    def structure(value: Any, _: Any) -> list[Any]:
        if not isinstance(value, list):
            raise _Refused(f"expected a list, got {_shown(value)}")
        return items(value, list_type)
    return structure


def _literal_factory(literal: Any, _converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
    allowed = get_args(literal)

    def structure(value: Any, _: Any) -> Any:
        if type(value) is not str or value not in allowed:
            raise _Refused(f"expected one of {', '.join(allowed)}, got {_shown(value)}")
        return value
    return structure


def _strict_converter() -> cattrs.Converter:
    converter = cattrs.Converter()
    converter.register_structure_hook(str, _exactly(str, "a string"))
    converter.register_structure_hook(bool, _exactly(bool, "true or false"))
    converter.register_structure_hook(int, _exactly(int, "an integer"))
    converter.register_structure_hook(float, _number)
    converter.register_structure_hook_factory(lambda t: get_origin(t) is list, _list_factory)
    converter.register_structure_hook_factory(lambda t: get_origin(t) is Literal, _literal_factory)
    return converter


_CONVERTER = _strict_converter()


def _plain_message(error: BaseException, type_: Any) -> str:
    """Our hooks' own words ("expected a number, got \"abc\""); cattrs's for the rest."""
    if isinstance(error, _Refused):
        return str(error)
    return cattrs.v.format_exception(error, type_)


def _in_range(low: float, high: float) -> Callable[[float], str | None]:
    return lambda value: None if low <= value <= high else f"expected a value from {low:g} to {high:g}, got {value:g}"


def _build_dirs(dirs: list[str]) -> tuple[Path, ...]:
    return tuple(Path(os.path.expanduser(d)) for d in dirs)


def _paths_problem(dirs: list[str]) -> str | None:
    bad = [d for d in dirs if not d.strip() or "\0" in d]
    return f"expected non-empty paths, got {_shown(bad[0])}" if bad else None


def _mappings_problem(mappings: list[PathMapping]) -> str | None:
    bad = [m for m in mappings if not m["from"] or "\0" in m["from"] + m["to"]]
    return f"expected a non-empty \"from\" path, got {_shown(bad[0])}" if bad else None


@dataclass(frozen=True)
class _Key:
    """One setting: its JSON name, Settings field, JSON type, range check, and conversion."""

    name: str
    field: str
    type: Any
    check: Callable[[Any], str | None] = lambda value: None
    convert: Callable[[Any], Any] = lambda value: value


KEYS = (
    _Key("buildDirs", "build_dirs", list[str], _paths_problem, _build_dirs),
    _Key("threshold", "threshold", float,
         lambda t: None if 0 < t <= 1 else f"expected a fraction above 0 and at most 1, got {t:g}"),
    _Key("engine", "engine", Engine),
    _Key("linker", "linker", Linker),
    _Key("pathMappings", "path_mappings", list[PathMapping], _mappings_problem,
         lambda mappings: tuple((m["from"], m["to"]) for m in mappings)),
    _Key("severity", "severity", dict[Status, Severity], convert=lambda severity: {**DEFAULT_SEVERITY, **severity}),
    _Key("discoveryDepth", "discovery_depth", int, _in_range(0, MAX_DISCOVERY_DEPTH)),
    _Key("debounceSeconds", "debounce_seconds", float, _in_range(0, MAX_DEBOUNCE_SECONDS)),
    _Key("allowWorkspaceLinker", "allow_workspace_linker", bool),
    _Key("history", "history", bool),
    _Key("historyBuilds", "history_builds", int, _in_range(1, MAX_KEEP)),
    _Key("codeLens", "code_lens", bool),
)


def read_settings(options: Any, previous: Settings) -> SettingsRead:
    """The settings in `options` (flat, or under "reachls"): a missing key takes its default, a bad
    one keeps its `previous` value."""
    section, where = (options["reachls"], "reachls") if isinstance(options, dict) and "reachls" in options \
        else (options, "settings")
    if section is None and where == "settings":
        return SettingsRead(Settings(), None)
    if not isinstance(section, dict):
        return SettingsRead(previous, f"{where}: expected an object, got {_shown(section)}; nothing changed")
    values: dict[str, Any] = {}
    refused: list[str] = []
    for key in KEYS:
        if key.name not in section:
            values[key.field] = getattr(Settings(), key.field)
            continue
        try:
            value = _CONVERTER.structure(section[key.name], key.type)
            problem = key.check(value)
        except Exception as error:  # every structuring failure of a settings value is the user's value, said below
            problem = "; ".join(cattrs.transform_error(error, path=f"reachls.{key.name}",
                                                       format_exception=_plain_message))
        else:
            problem = problem and f"{problem} @ reachls.{key.name}"
        if problem:
            refused.append(problem)
            values[key.field] = getattr(previous, key.field)
        else:
            values[key.field] = key.convert(value)
    message = f"settings not applied, each keeps its previous value: {'; '.join(refused)}" if refused else None
    return SettingsRead(replace(previous, **values), message)
