import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from toolchain import EXAMPLE_VARIANTS, build_example, build_real_kernels, copy_example  # noqa: E402


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
