"""The CI recipes of README.md ("In CI"), run as written on the example tree, without network: the
GitHub job's `Build`, `Scan` and baseline-keeping steps, the GitLab job's `script` and `after_script`.
A good build (the safe variant) makes the baseline; a build that overflows then fails the scan on
its new overflows and uploads valid SARIF saying what changed; against its own report it passes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from test_sarif import assert_valid_sarif
from toolchain import ROOT, copy_example, lld_overflows, need

BIN = Path(sys.executable).parent


def recipes() -> dict[str, dict]:
    """The two YAML blocks of the README's "In CI" section, parsed."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### In CI"):]
    section = section[:section.index("\n## ")]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    assert len(blocks) == 2
    return {"github": yaml.safe_load(blocks[0]), "gitlab": yaml.safe_load(blocks[1])}


def github_commands(recipe: dict) -> dict[str, str]:
    steps = recipe["jobs"]["reach"]["steps"]
    named = {step["name"]: step["run"] for step in steps if "run" in step and "name" in step}
    return {"build": named["Build"], "scan": named["Scan"], "keep": named["Keep this report as the baseline"]}


def gitlab_commands(recipe: dict) -> dict[str, str]:
    job = recipe["reach"]
    script = job["script"]
    return {"build": script[0], "scan": "\n".join(script[1:]), "after": "\n".join(job["after_script"])}


def sh(command: str, cwd: Path, env: dict[str, str]) -> int:
    """As the runners do: bash, stopping at the first failing command (GitHub adds pipefail)."""
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", command], cwd=cwd,
                          env=env).returncode


@pytest.mark.parametrize("forge", ["github", "gitlab"])
def test_the_ci_recipe_fails_on_new_overflows_and_uploads_sarif(forge, tmp_path):
    need("clang", "ld.lld", "make")
    recipe = recipes()[forge]
    commands = github_commands(recipe) if forge == "github" else gitlab_commands(recipe)
    assert recipe["jobs"]["reach"]["env"]["BUILD"] if forge == "github" else recipe["reach"]["variables"]["BUILD"]
    tree = copy_example(tmp_path)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}

    good = {**env, "BUILD": "out/good", "VARIANT": "safe"}
    assert sh(commands["build"], tree, good) == 0
    assert sh(commands["scan"], tree, good) == 0  # no baseline yet: fails only on an overflow
    assert_valid_sarif(json.loads((tree / "reach.sarif").read_text()))
    if forge == "github":
        assert sh(commands["keep"], tree, good) == 0
    else:  # the artifact of the default branch's last job, which the before_script downloads
        shutil.copy(tree / "reach.json", tree / "reach-baseline.json")

    pr = {**env, "BUILD": "out/pr", "VARIANT": "overflow"}
    assert sh(commands["build"], tree, pr) == 0  # the final link failed; vmlinux.o is there
    assert not (tree / "out/pr/vmlinux").exists() and (tree / "out/pr/vmlinux.o").is_file()
    assert sh(commands["scan"], tree, pr) == 1
    sarif = json.loads((tree / "reach.sarif").read_text())
    assert_valid_sarif(sarif)
    errors = [r for r in sarif["runs"][0]["results"] if r["level"] == "error"]
    expected = lld_overflows((tree / "out/pr/build.log").read_text())
    assert sorted((r["properties"]["relocation"], r["properties"]["distance"]) for r in errors) == \
        sorted((e.type, e.distance) for e in expected)
    assert {r["baselineState"] for r in errors} == {"updated"}  # fragile in the good build
    assert {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in errors} == \
        {"arch/arm64/kvm/hyp/entry.S"}
    if forge == "gitlab":
        assert sh(commands["after"], tree, pr) == 0
        quality = json.loads((tree / "gl-code-quality.json").read_text())
        assert len(quality) == len(errors)

    shutil.copy(tree / "reach.json", tree / "reach-baseline.json")  # the overflows are in the baseline now
    assert sh(commands["scan"], tree, pr) == 0
