"""`reachls picture`: the final image's layout to scale, with each reported reference drawn on it.

One linear address axis: every x position is proportional to an address (a section's left edge,
a site, a target), so what the eye compares — how far the target is, how much of the reach window
that takes — is what the linker checks. A kernel image spans tens of MiB while a reach window
spans 1–128 MiB and a section can be 8 bytes, so a box keeps a minimum width (its left edge stays
exact), a window wider than the image is clipped to it (its title gives the whole range), and a
label is drawn only where it fits without covering another.

Plain SVG written with `xml.etree` (stdlib): the drawing is a few hundred rectangles and lines at
computed coordinates, which a plotting library would only hide behind its own transforms and
scripts. The HTML form is the same SVG inline with a short script (hover shows the record; in a
VS Code webview a click asks the extension to open the source line) under a content security
policy that allows nothing from the network.
"""

from __future__ import annotations

import html
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np

from .elf import ElfInput
from .errors import ReachlsError
from .messages import describe, linker_site
from .pipeline import ScanResult
from .record import ReachRecord, SourceLocation, Status, format_size
from .report import display_path

#: Status → colour (the editor's severities: red error, amber warning, blue/purple information).
COLOURS = {Status.OVERFLOW: "#cf222e", Status.VENEER: "#8250df", Status.AT_RISK: "#bf8700",
           Status.FRAGILE: "#0969da", Status.OK: "#1a7f37"}
WIDTH = 1200
MARGIN = 16
#: A box narrower than this is widened to it (to the right: its left edge stays at its address).
MIN_BOX = 2.0
#: Width of one character of the 11 px sans-serif labels, rounded up: labels are culled by it.
CHAR_WIDTH = 6.6
LABELLED_INPUT_SECTIONS = 12
#: The most input sections drawn (the biggest): more than the width has pixels for.
DRAWN_INPUT_SECTIONS = 1500
ROW = 20
#: The most references drawn, worst first: a kernel's `--all` holds ~100 000 (a 100 MB drawing);
#: the title says how many were left out.
DRAWN_RECORDS = 2000
FONT = "system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif"


@dataclass(frozen=True)
class Span:
    """An address range drawn as a box: an output section, or an input section between a site and its target."""

    name: str
    start: int
    end: int
    output_section: str | None = None
    labelled: bool = False


@dataclass(frozen=True)
class LayoutPicture:
    """What is drawn: the image's output sections, the biggest input sections the references cross,
    and the reported records (each with a site and a target address)."""

    artefact: str
    placed_by: str
    output_sections: tuple[Span, ...]
    input_sections: tuple[Span, ...]
    records: tuple[ReachRecord, ...]
    left_out: int = 0  # reported records not drawn (past DRAWN_RECORDS, the least worrying)


def layout_picture(result: ScanResult, labelled: int = LABELLED_INPUT_SECTIONS) -> LayoutPicture:
    """The picture of a scan: output sections from its placement and the artefact's section sizes."""
    records = tuple(result.analysis.records[:DRAWN_RECORDS])  # worst first
    unplaced = sum(r.site.address is None or r.target.address is None for r in result.analysis.records)
    if unplaced:
        raise ReachlsError(f"{unplaced} of {len(result.analysis.records)} references have no address (read from a linker log "
                           "whose objects are not at hand): a picture needs vmlinux.o or vmlinux",
                           str(result.inputs.artefact))
    placement = result.analysis.placement
    with ElfInput(result.inputs.artefact) as obj:
        indices = np.fromiter(placement.section_address, dtype=np.int64, count=len(placement.section_address))
        sections = [obj.sections[i] for i in indices.tolist()]
        starts = np.fromiter(placement.section_address.values(), dtype=np.uint64, count=len(indices))
        sizes = np.fromiter((s.size for s in sections), dtype=np.uint64, count=len(indices))
        names = [s.name for s in sections]
    ends = starts + sizes
    for row in np.flatnonzero(np.isin(indices, list(placement.pieces)) & (sizes > 0)).tolist():
        # a section placed in pieces: from its first piece to its last byte's
        placed = placement.addresses(int(indices[row]), np.array([0, sizes[row] - 1], dtype=np.uint64))
        starts[row], ends[row] = placed.min(), max(placed.max() + np.uint64(1), ends[row])
    outputs = [placement.output_section.get(i, name) for i, name in zip(indices.tolist(), names)]
    return LayoutPicture(str(result.inputs.artefact), placement.placed_by,
                         _output_sections(outputs, starts, ends, placement.output_start),
                         _crossed_sections(names, outputs, starts, ends, records, labelled), records,
                         len(result.analysis.records) - len(records))


def _output_sections(outputs: list[str], starts: np.ndarray, ends: np.ndarray,
                     output_start: dict[str, int]) -> tuple[Span, ...]:
    """Each output section that holds a placed input section, from its start to its last input's end."""
    if not outputs:
        return ()
    unique, group = np.unique(np.array(outputs, dtype=object), return_inverse=True)
    first = np.full(len(unique), np.iinfo(np.uint64).max, dtype=np.uint64)
    last = np.zeros(len(unique), dtype=np.uint64)
    np.minimum.at(first, group, starts)
    np.maximum.at(last, group, ends)
    spans = [Span(name, min(int(lo), output_start.get(name, int(lo))), int(hi))
             for name, lo, hi in zip(unique.tolist(), first.tolist(), last.tolist())]
    return tuple(sorted(spans, key=lambda s: (s.start, s.end)))


def _crossed_sections(names: list[str], outputs: list[str], starts: np.ndarray, ends: np.ndarray,
                      records: tuple[ReachRecord, ...], count: int) -> tuple[Span, ...]:
    """The biggest input sections (up to DRAWN_INPUT_SECTIONS) that overlap some reference's stretch
    from site to target — what lies between a branch and where it goes —, the `count` biggest labelled."""
    if not records or not len(starts):
        return ()
    stretches = sorted((min(r.site.address, r.target.address), max(r.site.address, r.target.address))
                       for r in records)
    merged: list[list[int]] = []
    for lo, hi in stretches:
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    lows = np.array([m[0] for m in merged], dtype=np.uint64)
    highs = np.array([m[1] for m in merged], dtype=np.uint64)
    # the last stretch starting before a section's end is the only one that can overlap it
    nearest = np.searchsorted(lows, ends, side="left") - 1
    crossed = (nearest >= 0) & (ends > starts) & (starts <= highs[np.maximum(nearest, 0)])
    rows = np.flatnonzero(crossed)
    biggest = rows[np.argsort(-(ends[rows] - starts[rows]).astype(np.int64), kind="stable")[:DRAWN_INPUT_SECTIONS]]
    spans = [Span(names[row], int(starts[row]), int(ends[row]), outputs[row], rank < count)
             for rank, row in enumerate(biggest.tolist())]
    return tuple(sorted(spans, key=lambda s: s.start))


def reach_window(record: ReachRecord) -> tuple[int, int]:
    """The target addresses the site's instruction can reach, inclusive: its range around the site
    (around the site's page for a page delta, whose target may sit anywhere in its last page)."""
    site, kind = record.site.address, record.kind
    if kind.formula in ("page", "got_page"):
        page = site & ~0xFFF
        return page + kind.lo, page + kind.hi + 0xFFF
    base = site & ~3 if kind.formula == "prel_pa" else site
    return base + kind.lo, base + kind.hi


class _Axis:
    """Address → x, linear over [lo, hi]."""

    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, max(hi, lo + 1)
        self.scale = (WIDTH - 2 * MARGIN) / (self.hi - self.lo)

    def x(self, address: int) -> float:
        return round(MARGIN + (address - self.lo) * self.scale, 3)

    def clipped_x(self, address: int) -> float:
        return self.x(min(max(address, self.lo), self.hi))

    def box(self, start: int, end: int) -> tuple[float, float]:
        """Left edge and width of [start, end): exact left edge, at least MIN_BOX wide."""
        left = self.x(start)
        return left, max(round(self.x(end) - left, 3), MIN_BOX)


def _text_width(text: str) -> float:
    return len(text) * CHAR_WIDTH


class _Labels:
    """Left-to-right label placement in one band: a label that would cover the previous one is culled."""

    def __init__(self) -> None:
        self.right = float("-inf")

    def fits(self, left: float, text: str, limit: float) -> bool:
        right = left + _text_width(text)
        if left < self.right + 4 or right > limit:
            return False
        self.right = right
        return True


def _element(parent: ET.Element, tag: str, title: str | None = None, **attributes: object) -> ET.Element:
    element = ET.SubElement(parent, tag, {k.rstrip("_").replace("_", "-"): str(v) for k, v in attributes.items()})
    if title is not None:
        ET.SubElement(element, "title").text = title
    return element


def _where(location: SourceLocation | None) -> str:
    return f"{display_path(location.file)}:{location.line}" if location else "no source line (no DWARF)"


def record_text(record: ReachRecord) -> str:
    """The hover text of a record: the report's line, then site, target, window and headroom."""
    lo, hi = reach_window(record)
    site, target = record.site, record.target
    site_name = linker_site(record)
    if site.symbol is not None:
        site_name = f"{site.symbol}+{site.symbol_offset:#x} ({site_name})"
    return "\n".join((
        f"{record.status.value}: {describe(record)}",
        f"site {site_name} at {site.address:#x} in {site.output_section or '?'}, "
        f"{_where(site.location)}",
        f"target {target.symbol} at {target.address:#x} in {target.section or 'absolute'}, {_where(target.location)}",
        f"reach window {lo:#x}–{hi:#x}; headroom {record.headroom} B; {record.kind.name}",
    ))


def picture_svg(picture: LayoutPicture) -> str:
    """The picture as a standalone SVG document (each element's record or section in its <title>)."""
    return ET.tostring(_svg(picture, None), encoding="unicode")


def _svg(picture: LayoutPicture, locate: Callable[[str], str] | None) -> ET.Element:
    """The drawing; with `locate` (build path → the path to open), each record names its site's and
    target's files and lines for the page's clicks."""
    records = picture.records
    addresses = [a for s in picture.output_sections for a in (s.start, s.end)]
    addresses += [a for r in records for a in (r.site.address, r.target.address)]
    if not addresses:
        raise ReachlsError("nothing to draw: the image has no allocated section", picture.artefact)
    axis = _Axis(min(addresses), max(addresses))
    rows_top = 150
    height = rows_top + ROW * max(len(records), 1) + 40
    svg = ET.Element("svg", {"xmlns": "http://www.w3.org/2000/svg", "width": str(WIDTH), "height": str(height),
                             "viewBox": f"0 0 {WIDTH} {height}", "font-family": FONT, "font-size": "11",
                             "class": "reachls-layout"})
    _markers(svg)
    _element(svg, "rect", x=0, y=0, width=WIDTH, height=height, fill="#ffffff")
    counts = {status: sum(r.status is status for r in records) for status in Status}
    summary = ", ".join(f"{n} {s.value}" for s, n in counts.items() if n) or "nothing reported"
    if picture.left_out:
        summary += f" drawn, the worst; {picture.left_out} more reported, not drawn"
    _element(svg, "text", x=MARGIN, y=18, font_size=13, font_weight="bold").text = \
        f"{display_path(picture.artefact)} — placed by {picture.placed_by}; {summary}"
    _ticks(svg, axis, 36)
    _output_band(svg, axis, picture.output_sections, 52)
    _input_band(svg, axis, picture.input_sections, 96)
    _element(svg, "text", x=MARGIN, y=rows_top - 8, fill="#57606a").text = \
        "references: site ● → target ▲, reach window shaded around the site"
    for row, record in enumerate(records):
        _record_row(svg, axis, record, row, rows_top + row * ROW, locate)
    _legend(svg, height - 14)
    return svg


def _markers(svg: ET.Element) -> None:
    """An arrowhead per status colour."""
    defs = _element(svg, "defs")
    for status, colour in COLOURS.items():
        marker = _element(defs, "marker", id=f"arrow-{status.value}", viewBox="0 0 8 8", refX=7, refY=4,
                          markerWidth=7, markerHeight=7, orient="auto-start-reverse")
        _element(marker, "path", d="M0,0 L8,4 L0,8 z", fill=colour)


def _ticks(svg: ET.Element, axis: _Axis, y: int) -> None:
    """Address ticks at a power-of-two step giving about eight of them; the first says the address."""
    span = axis.hi - axis.lo
    step = 1 << max((span // 8).bit_length() - 1, 0)
    group = _element(svg, "g", class_="axis", fill="#57606a")
    _element(group, "line", x1=MARGIN, y1=y, x2=WIDTH - MARGIN, y2=y, stroke="#8c959f")
    labels = _Labels()
    first = -(-axis.lo // step) * step
    for address in range(first, axis.hi + 1, step):
        x = axis.x(address)
        _element(group, "line", x1=x, y1=y - 4, x2=x, y2=y, stroke="#8c959f")
        text = f"{address:#x}" if address == first else f"+{format_size(address - first)}"
        if labels.fits(x + 2, text, WIDTH):
            _element(group, "text", x=round(x + 2, 3), y=y - 6).text = text


def _output_band(svg: ET.Element, axis: _Axis, sections: tuple[Span, ...], y: int) -> None:
    _element(svg, "text", x=MARGIN, y=y - 3, fill="#57606a", font_size=10).text = "output sections"
    labels = _Labels()
    for index, span in enumerate(sections):
        left, width = axis.box(span.start, span.end)
        title = f"output section {span.name}: {span.start:#x}–{span.end:#x} ({format_size(span.end - span.start)})"
        group = _element(svg, "g", title, class_="output-section", data_name=span.name, data_start=span.start,
                         data_end=span.end)
        _element(group, "rect", x=left, y=y, width=width, height=28, fill="#eaeef2" if index % 2 else "#d0d7de",
                 stroke="#6e7781", stroke_width=0.5)
        if width > _text_width(span.name) + 6 and labels.fits(left + 3, span.name, left + width):
            _element(group, "text", x=round(left + 3, 3), y=y + 18).text = span.name


def _input_band(svg: ET.Element, axis: _Axis, sections: tuple[Span, ...], y: int) -> None:
    if not sections:
        return
    _element(svg, "text", x=MARGIN, y=y - 3, fill="#57606a", font_size=10).text = \
        "biggest input sections between sites and targets"
    labels = _Labels()
    for span in sections:
        left, width = axis.box(span.start, span.end)
        title = (f"input section {span.name} in {span.output_section}: {span.start:#x}–{span.end:#x} "
                 f"({format_size(span.end - span.start)})")
        group = _element(svg, "g", title, class_="input-section", data_name=span.name, data_start=span.start,
                         data_end=span.end)
        _element(group, "rect", x=left, y=y, width=width, height=20, fill="#f6f8fa", stroke="#8c959f",
                 stroke_width=0.5)
        if span.labelled and labels.fits(left + 2, span.name, WIDTH - MARGIN):
            _element(group, "text", x=round(left + 2, 3), y=y + 33, font_size=10, fill="#424a53").text = span.name


def _record_row(svg: ET.Element, axis: _Axis, record: ReachRecord, row: int, y: int,
                locate: Callable[[str], str] | None) -> None:
    colour = COLOURS[record.status]
    site, target = record.site, record.target
    attributes: dict[str, object] = {
        "class_": "record", "data_index": row, "data_status": record.status.value, "data_type": record.kind.name,
        "data_site_symbol": site.symbol or "", "data_target_symbol": target.symbol,
    }
    for side, location in (("site", site.location), ("target", target.location)):
        if location is not None and locate is not None:
            attributes[f"data_{side}_file"] = locate(location.file)
            attributes[f"data_{side}_line"] = location.line
    group = _element(svg, "g", record_text(record), **attributes)
    lo, hi = reach_window(record)
    left, right = axis.clipped_x(lo), axis.clipped_x(hi)
    _element(group, "rect", class_="window", x=left, y=y + 9, width=max(round(right - left, 3), MIN_BOX),
             height=ROW - 10, fill=colour, fill_opacity=0.1, stroke=colour, stroke_opacity=0.35, stroke_width=0.5)
    site_x, target_x, mid = axis.x(site.address), axis.x(target.address), y + 14
    _element(group, "line", class_="reference", x1=site_x, y1=mid, x2=target_x, y2=mid, stroke=colour,
             stroke_width=1.5, marker_end=f"url(#arrow-{record.status.value})")
    _element(group, "circle", class_="site", cx=site_x, cy=mid, r=3.5, fill=colour)
    _element(group, "path", class_="target", d=f"M{target_x},{mid - 5} l4,8 h-8 z", fill=colour)
    label = f"{site.instruction or record.kind.short_name} → {target.symbol}"
    width, near, far = _text_width(label), min(site_x, target_x), max(site_x, target_x)
    # beyond the arrow's head or tail, else above the arrow when it is long enough
    for text_x, text_y in ((far + 8, mid + 4), (near - 8 - width, mid + 4), (near + 6, mid - 5)):
        if MARGIN <= text_x and text_x + width <= (WIDTH - MARGIN if text_y > mid else far):
            _element(group, "text", x=round(text_x, 3), y=text_y, font_size=10, fill=colour).text = label
            break


def _legend(svg: ET.Element, y: int) -> None:
    x = float(MARGIN)
    for status, colour in COLOURS.items():
        _element(svg, "rect", x=x, y=y - 9, width=10, height=10, fill=colour)
        _element(svg, "text", x=x + 14, y=y).text = status.value
        x += 24 + _text_width(status.value)


HTML_STYLE = """
body { margin: 0; padding: 8px; background: #ffffff; color: #1f2328; font-family: system-ui, sans-serif; }
.reachls-layout .record, .reachls-layout .output-section, .reachls-layout .input-section { cursor: default; }
.reachls-layout .record[data-site-file] { cursor: pointer; }
.reachls-layout .record:hover .reference { stroke-width: 3; }
.reachls-layout .record:hover .window { fill-opacity: 0.25; }
#tip { position: fixed; display: none; max-width: 720px; padding: 6px 8px; background: #ffffff;
       border: 1px solid #8c959f; border-radius: 4px; box-shadow: 0 2px 8px rgba(0,0,0,.2);
       font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; white-space: pre-wrap; pointer-events: none; }
"""

#: Moves each element's <title> into the tooltip (the browser's own would show it twice), and in a
#: VS Code webview turns a click on a record into a request to open its site (or, on the target
#: marker, its target) in the editor.
HTML_SCRIPT = """
(() => {
  const tip = document.getElementById("tip");
  const vscode = typeof acquireVsCodeApi === "function" ? acquireVsCodeApi() : null;
  for (const element of document.querySelectorAll(".reachls-layout [data-tip-source]")) {
    const title = element.querySelector(":scope > title");
    if (title) { element.dataset.tip = title.textContent; title.remove(); }
  }
  const tipped = (target) => target instanceof Element ? target.closest("[data-tip]") : null;
  document.addEventListener("mouseover", (event) => {
    const element = tipped(event.target);
    if (!element) { tip.style.display = "none"; return; }
    tip.textContent = element.dataset.tip;
    tip.style.display = "block";
  });
  document.addEventListener("mousemove", (event) => {
    const room = window.innerWidth - tip.offsetWidth - 8;
    tip.style.left = Math.max(0, Math.min(event.clientX + 12, room)) + "px";
    tip.style.top = (event.clientY + 16) + "px";
  });
  document.addEventListener("click", (event) => {
    const record = event.target instanceof Element ? event.target.closest(".record") : null;
    if (!record || !vscode) { return; }
    const side = event.target.closest(".target") && record.dataset.targetFile ? "target" : "site";
    const file = record.dataset[side + "File"];
    if (file) { vscode.postMessage({ command: "open", file, line: Number(record.dataset[side + "Line"]) }); }
  });
})();
"""


def picture_html(picture: LayoutPicture, locate: Callable[[str], str] = str) -> str:
    """The picture as one self-contained HTML page: the SVG inline, its style and script under a
    nonce, and a content security policy that loads nothing else (no network, no other script)."""
    svg = _svg(picture, locate)
    for element in svg.iter():
        if element.find("title") is not None:
            element.set("data-tip-source", "")
    nonce = secrets.token_urlsafe(18)
    policy = f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'"
    title = html.escape(f"reachls layout — {picture.artefact}")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{policy}">\n'
            f'<title>{title}</title>\n<style nonce="{nonce}">{HTML_STYLE}</style></head>\n<body>\n'
            f'{ET.tostring(svg, encoding="unicode")}\n<div id="tip" role="tooltip"></div>\n'
            f'<script nonce="{nonce}">{HTML_SCRIPT}</script>\n</body></html>\n')


def write_picture(result: ScanResult, output: Path) -> None:
    """`reachls picture -o OUTPUT`: the SVG or the HTML page, as OUTPUT's suffix says."""
    render = {".svg": picture_svg, ".html": picture_html, ".htm": picture_html}.get(output.suffix.lower())
    if render is None:
        raise ReachlsError("the picture is written as .svg or .html", str(output))
    text = render(layout_picture(result))
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ReachlsError(f"cannot write the picture: {exc.strerror}", str(output)) from None
