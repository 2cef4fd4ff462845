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
from dataclasses import dataclass, replace
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

    build_dirs: tuple[Path, ...]
    threshold: float
    engine: str
    linker: str
    path_mappings: tuple[tuple[str, str], ...]
    severity: dict[str, str]
    discovery_depth: int
    debounce_seconds: float
    allow_workspace_linker: bool
    history: bool
    history_builds: int
    code_lens: bool


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
    """One setting: its JSON name, `Settings` field, JSON type and default (as the client sends
    them), bounds, further check, and conversion to the `Settings` value. `editor` is how an
    editor's settings UI declares it where that differs from what the client sends (the VS Code
    client turns `pathMappings`' table into the list)."""

    name: str
    field: str
    type: Any
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    above_minimum: bool = False  # the minimum itself is refused
    check: Callable[[Any], str | None] = lambda value: None
    convert: Callable[[Any], Any] = lambda value: value
    editor: dict[str, Any] | None = None

    def problem(self, value: Any) -> str | None:
        """What is wrong with a value of the right type, in words for the user."""
        low, high = self.minimum, self.maximum
        if low is None or high is None:
            return self.check(value)
        if not ((low < value if self.above_minimum else low <= value) and value <= high):
            bounds = f"above {low:g} and at most {high:g}" if self.above_minimum else f"from {low:g} to {high:g}"
            return f"expected a value {bounds}, got {value:g}"
        return self.check(value)


KEYS = (
    _Key("buildDirs", "build_dirs", list[str], [], check=_paths_problem, convert=_build_dirs),
    _Key("threshold", "threshold", float, DEFAULT_THRESHOLD, 0, 1, above_minimum=True),
    _Key("engine", "engine", Engine, "auto"),
    _Key("linker", "linker", Linker, "auto"),
    _Key("pathMappings", "path_mappings", list[PathMapping], [], check=_mappings_problem,
         convert=lambda mappings: tuple((m["from"], m["to"]) for m in mappings),
         editor={"type": "object", "default": {}, "additionalProperties": {"type": "string"}}),
    _Key("severity", "severity", dict[Status, Severity], DEFAULT_SEVERITY,
         convert=lambda severity: {**DEFAULT_SEVERITY, **severity}),
    _Key("discoveryDepth", "discovery_depth", int, 4, 0, MAX_DISCOVERY_DEPTH),
    _Key("debounceSeconds", "debounce_seconds", float, 0.5, 0, MAX_DEBOUNCE_SECONDS),
    _Key("allowWorkspaceLinker", "allow_workspace_linker", bool, False),
    _Key("history", "history", bool, True),
    _Key("historyBuilds", "history_builds", int, DEFAULT_KEEP, 1, MAX_KEEP),
    _Key("codeLens", "code_lens", bool, False),
)


#: Every setting at its default: what the server works with before the client says anything.
DEFAULT_SETTINGS = Settings(**{key.field: key.convert(key.default) for key in KEYS})


def _json_type(type_: Any) -> dict[str, Any]:
    if get_origin(type_) is Literal:
        return {"type": "string", "enum": list(get_args(type_))}
    if get_origin(type_) is list:
        (item,) = get_args(type_)
        return {"type": "array"} | ({"items": _json_type(item)} if item in (str, int, float, bool) else {})
    return {"type": {str: "string", bool: "boolean", int: "integer", float: "number"}[type_]}


def settings_schema() -> dict[str, dict[str, Any]]:
    """Every setting as the JSON schema property an editor's settings contribution must declare,
    keyed `reachls.<name>`: type, enum, default, bounds. A mapping setting is one property per
    member, as editors write dotted keys (`reachls.severity.overflow`)."""
    schema: dict[str, dict[str, Any]] = {}
    for key in KEYS:
        if get_origin(key.type) is dict:
            members, values = get_args(key.type)
            for member in get_args(members):
                schema[f"reachls.{key.name}.{member}"] = _json_type(values) | {"default": key.default[member]}
            continue
        prop = key.editor or _json_type(key.type) | {"default": key.default}
        if key.minimum is not None:
            prop |= {"exclusiveMinimum" if key.above_minimum else "minimum": key.minimum}
        if key.maximum is not None:
            prop |= {"maximum": key.maximum}
        schema[f"reachls.{key.name}"] = prop
    return schema


def read_settings(options: Any, previous: Settings) -> SettingsRead:
    """The settings in `options` (flat, or under "reachls"): a missing key takes its default, a bad
    one keeps its `previous` value."""
    section, where = (options["reachls"], "reachls") if isinstance(options, dict) and "reachls" in options \
        else (options, "settings")
    if section is None and where == "settings":
        return SettingsRead(DEFAULT_SETTINGS, None)
    if not isinstance(section, dict):
        return SettingsRead(previous, f"{where}: expected an object, got {_shown(section)}; nothing changed")
    values: dict[str, Any] = {}
    refused: list[str] = []
    for key in KEYS:
        if key.name not in section:
            values[key.field] = key.convert(key.default)
            continue
        try:
            value = _CONVERTER.structure(section[key.name], key.type)
            problem = key.problem(value)
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
