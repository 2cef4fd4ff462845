"""The language server front end: translates findings into LSP diagnostics, hovers and code actions."""
