"""How far a scan has got: the stages every scan goes through, told to whoever shows them.

A scan of an allmodconfig `vmlinux.o` takes seconds; the front ends show where it is (the CLI a
progress line on a terminal, the language server work-done progress) and the benchmark records
each stage's time and memory. All of them receive the same calls from the pipeline, so what they
show is what the scan does.
"""

from __future__ import annotations

#: The stages of a scan, in order: read the artefact's tables, place its sections, measure every
#: short-reach reference, find the source lines of the ones reported.
STAGES = ("read", "place", "analyse", "source")


class Progress:
    """Receives a scan's stages as they begin and how far the current one is; shows nothing.

    Front ends subclass it. A stage may be skipped (a linked image is not placed), never repeated."""

    def begin(self, stage: str) -> None:
        """`stage` (one of `STAGES`) begins; the previous one, if any, has ended."""

    def advance(self, fraction: float) -> None:
        """The current stage is `fraction` (0 to 1) done."""

    def end(self) -> None:
        """The scan is over (finished or failed): the last stage has ended."""

    @staticmethod
    def overall(stage: str, fraction: float = 0.0) -> float:
        """How much of the whole scan (0 to 1) is done at `fraction` of `stage`, each stage a equal share."""
        return (STAGES.index(stage) + min(max(fraction, 0.0), 1.0)) / len(STAGES)


#: For callers that show nothing.
SILENT = Progress()
