"""One settings schema: the server's (`lsp/settings.py` KEYS), against which the VS Code
extension's settings contribution is checked, so a default, type, enum or bound cannot drift."""

from __future__ import annotations

import json

from reachls.lsp.settings import DEFAULT_SETTINGS, KEYS, read_settings, settings_schema
from toolchain import ROOT

PACKAGE_JSON = ROOT / "vscode-client" / "package.json"
#: Settings of the client itself, which the server never reads.
CLIENT_ONLY = {"reachls.server.path", "reachls.server.pythonPath", "reachls.trace.server"}
#: What the Settings editor shows but the schema does not decide.
WORDS = {"description", "markdownDescription", "enumDescriptions", "scope", "order", "items"}


def _contributed() -> dict[str, dict]:
    return json.loads(PACKAGE_JSON.read_text())["contributes"]["configuration"]["properties"]


def test_the_extension_declares_every_server_setting_as_the_server_does() -> None:
    contributed, schema = _contributed(), settings_schema()
    assert set(contributed) - CLIENT_ONLY == set(schema)
    for name, declared in schema.items():
        shown = {k: v for k, v in contributed[name].items() if k not in WORDS or k in declared}
        assert shown == declared, name


def test_the_defaults_are_what_the_server_works_with_before_any_setting() -> None:
    assert read_settings({}, DEFAULT_SETTINGS).settings == DEFAULT_SETTINGS
    sent = {key.name: key.default for key in KEYS}
    assert read_settings({"reachls": sent}, DEFAULT_SETTINGS) == read_settings({}, DEFAULT_SETTINGS)


def test_a_bound_in_the_schema_is_the_bound_the_server_keeps() -> None:
    """Each bound the schema declares is refused one step past it, and taken at it."""
    for key in KEYS:
        if key.maximum is None:
            continue
        past = key.maximum + (1 if key.type is int else 0.5)
        refused = read_settings({key.name: past}, DEFAULT_SETTINGS)
        assert refused.refused and f"reachls.{key.name}" in refused.refused
        taken = read_settings({key.name: key.type(key.maximum)}, DEFAULT_SETTINGS)
        assert taken.refused is None and getattr(taken.settings, key.field) == key.maximum
        at_minimum = read_settings({key.name: key.type(key.minimum)}, DEFAULT_SETTINGS)
        assert (at_minimum.refused is not None) == key.above_minimum, key.name
