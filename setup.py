"""Packages: `reachls` from server/, and the tree-sitter queries edited in grammars/ installed as
the package data of `reachls.grammars` (loaded with importlib.resources), so a wheel or a
`pip install .` carries them. Everything else about the project is in pyproject.toml."""

from setuptools import find_namespace_packages, find_packages, setup

GRAMMARS = ["reachls.grammars", *(f"reachls.grammars.{name}" for name in find_namespace_packages("grammars"))]

setup(
    packages=[*find_packages("server"), *GRAMMARS],
    package_dir={"": "server", "reachls.grammars": "grammars"},
    package_data={name: ["*.scm"] for name in GRAMMARS},
)
