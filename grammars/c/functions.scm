; Function bodies. A well-formed definition gives its body; but kernel attribute macros
; (`__noreturn`, `__section(".text")`, `noinstr`) often make tree-sitter-c lose the definition
; and leave the body as a bare block at the top level, in a preprocessor conditional or in an
; ERROR node, so those blocks are bodies too. reachls/sources/c.py reads each header from the
; tokens before the body and keeps only the outermost blocks.
(function_definition body: (compound_statement) @body)
(translation_unit (compound_statement) @body)
(ERROR (compound_statement) @body)
(preproc_if (compound_statement) @body)
(preproc_ifdef (compound_statement) @body)
(preproc_else (compound_statement) @body)
(preproc_elif (compound_statement) @body)
(preproc_elifdef (compound_statement) @body)
