"""Hover and code-action latency of `reachls serve` on the example, over many requests (p50/p95).

Both are answered from the findings of the last completed scan, placed where they are in the
current text of the document, so their latency is the protocol round trip, a lookup and that
placement; this measures it through a real pygls client over stdio.
Usage: python bench/lsp_latency.py [REQUESTS]   (builds examples/hyp-lto's overflow variant)
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient
from pygls.uris import from_fs_path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "hyp-lto"
ENTRY = EXAMPLE / "arch/arm64/kvm/hyp/entry.S"


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


async def measure(requests: int) -> dict[str, list[float]]:
    client = LanguageClient("reachls-bench", "1")
    diagnostics: dict[str, list[types.Diagnostic]] = {}

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_diagnostics(params: types.PublishDiagnosticsParams) -> None:
        diagnostics[params.uri] = list(params.diagnostics)

    await client.start_io(sys.executable, "-m", "reachls.cli", "serve")
    await client.initialize_async(types.InitializeParams(
        capabilities=types.ClientCapabilities(), root_uri=from_fs_path(str(EXAMPLE)),
        initialization_options={"buildDirs": [str(EXAMPLE / "out" / "overflow")]}))
    client.initialized(types.InitializedParams())
    uri = from_fs_path(str(ENTRY))
    deadline = time.monotonic() + 60
    while uri not in diagnostics and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    first = diagnostics[uri][0]
    document = types.TextDocumentIdentifier(uri)
    samples: dict[str, list[float]] = {"hover": [], "codeAction": []}
    for _ in range(requests):
        start = time.perf_counter()
        await client.text_document_hover_async(types.HoverParams(document, first.range.start))
        samples["hover"].append(time.perf_counter() - start)
        start = time.perf_counter()
        await client.text_document_code_action_async(types.CodeActionParams(
            document, first.range, types.CodeActionContext([first])))
        samples["codeAction"].append(time.perf_counter() - start)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return samples


def main() -> None:
    requests = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    subprocess.run(["make", "-s", "-C", str(EXAMPLE), "VARIANT=overflow", "vmlinux.o"], check=True)
    samples = asyncio.run(measure(requests))
    print(f"LSP latency on examples/hyp-lto (overflow), {requests} requests each, through a pygls client:")
    print("| request | p50 (ms) | p95 (ms) | mean (ms) |\n|---|---:|---:|---:|")
    for name, values in samples.items():
        print(f"| {name} | {percentile(values, 0.5) * 1e3:.2f} | {percentile(values, 0.95) * 1e3:.2f} | "
              f"{statistics.fmean(values) * 1e3:.2f} |")


if __name__ == "__main__":
    main()
