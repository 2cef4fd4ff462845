import shutil
import subprocess
import sys
from pathlib import Path

import pytest

#: Tests are grouped by stage (unit/<stage>), end to end (e2e) and by client (clients); modules import
#: helpers from one another (test_relink's build dir, test_vscode_client's packaging), so every test
#: directory is importable, as the support modules here (toolchain, lsp_support) are.
TESTS = Path(__file__).resolve().parent
for directory in sorted({TESTS, *(path.parent for path in TESTS.glob("*/**/test_*.py"))}, reverse=True):
    sys.path.insert(0, str(directory))

from toolchain import (EXAMPLE_VARIANTS, GROWING_FILLER, HISTORY_THRESHOLD, build_example, build_real_kernels,  # noqa: E402
                       copy_example, rebuild_example)


@pytest.fixture(scope="session")
def example_builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The example's variants, built once per session: variant → build dir. Shared by every module
    that reads them, so read them and never write (a module that edits takes `private_tree`)."""
    tree = copy_example(tmp_path_factory.mktemp("example"))
    return {variant: build_example(tree, variant) for variant in EXAMPLE_VARIANTS}


@pytest.fixture(scope="session")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example with only its overflow variant built (what an editor opens: one build dir),
    once per session and shared: read it, never write (a module that edits takes `private_tree`)."""
    tree = copy_example(tmp_path_factory.mktemp("example"))
    build_example(tree, "overflow")
    return tree


@pytest.fixture(scope="module")
def private_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the example with its overflow variant built, the module's own to edit and rebuild."""
    tree = copy_example(tmp_path_factory.mktemp("example"))
    build_example(tree, "overflow")
    return tree


@pytest.fixture(scope="session")
def real_kernels() -> dict[str, Path]:
    """The real arm64 kernels of scripts/build-real-kernel.sh: clang-lto, gcc, clang-lto-overflow."""
    return build_real_kernels()


@pytest.fixture(scope="session")
def growing_builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[Path]]:
    """Three successive builds of one build dir, each recorded with `reachls scan --record`:
    (tree, build dir, a copy of each build's --noinhibit-exec image, oldest first). Tests that
    record more work on copies of the build dir."""
    tree = copy_example(tmp_path_factory.mktemp("growing"))
    images = []
    for step, files in enumerate(GROWING_FILLER):
        build = rebuild_example(tree, "at-risk", files)
        subprocess.run([sys.executable, "-m", "reachls.cli", "scan", "--record", "--threshold", str(HISTORY_THRESHOLD),
                        str(build)], check=True, capture_output=True)
        image = tree / f"image-{step}"
        shutil.copy(build / "vmlinux.noinhibit", image)
        images.append(image)
    return tree, build, images
