import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from toolchain import build_example, build_real_kernels, copy_example  # noqa: E402


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the example with its overflow variant built: each module may edit it."""
    tree = copy_example(tmp_path_factory.mktemp("example"))
    build_example(tree, "overflow")
    return tree


@pytest.fixture(scope="session")
def real_kernels() -> dict[str, Path]:
    """The real arm64 kernels of scripts/build-real-kernel.sh: clang-lto, gcc, clang-lto-overflow."""
    return build_real_kernels()
