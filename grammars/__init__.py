"""The tree-sitter queries, installed as the package `reachls.grammars` (see setup.py): a wheel
carries them and `importlib.resources` reads them wherever the package is installed."""
