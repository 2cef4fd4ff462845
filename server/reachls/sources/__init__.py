"""The source parsers the language server uses to place diagnostics and edits.

`asm` reads GNU assembler `.S` files statement by statement; `c` finds C function definitions
with tree-sitter-c. Both report 1-based lines and 0-based columns counted in Python `str`
indices; the language server converts columns to UTF-16 code units.
"""
