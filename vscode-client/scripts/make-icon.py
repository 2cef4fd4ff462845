#!/usr/bin/env python3
"""Draws icon.png (128x128 RGBA) with the standard library only: a branch site at the centre of
its reach (the ring), one target inside it, one beyond it in red. Run: python3 scripts/make-icon.py icon.png
"""

import math
import struct
import sys
import zlib

SIZE, SCALE = 128, 4  # drawn at 4x and averaged down for smooth edges
BACKGROUND = (24, 44, 72)
RING = (120, 200, 255)
SITE = (255, 255, 255)
NEAR = (110, 220, 140)
FAR = (240, 80, 70)


def segment_distance(px, py, ax, ay, bx, by):
    dx, dy = bx - ax, by - ay
    t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
    return math.hypot(px - ax - t * dx, py - ay - t * dy)


def colour_at(x, y):
    """Colour (or None: transparent) at a point in 0..128 coordinates."""
    r = 22  # rounded-square corner radius
    cx, cy = min(max(x, r), SIZE - r), min(max(y, r), SIZE - r)
    if math.hypot(x - cx, y - cy) > r:
        return None
    site, reach = (50, 64), 34
    near, far = (68, 44), (112, 88)
    if math.hypot(x - far[0], y - far[1]) <= 9:
        return FAR
    if math.hypot(x - near[0], y - near[1]) <= 7:
        return NEAR
    if math.hypot(x - site[0], y - site[1]) <= 8:
        return SITE
    if abs(math.hypot(x - site[0], y - site[1]) - reach) <= 3:
        return RING
    if segment_distance(x, y, *site, *far) <= 2.2:
        return FAR
    if segment_distance(x, y, *site, *near) <= 2.2:
        return NEAR
    return BACKGROUND


def pixels():
    rows = []
    for py in range(SIZE):
        row = bytearray([0])  # filter type: none
        for px in range(SIZE):
            total, covered = [0, 0, 0], 0
            for sy in range(SCALE):
                for sx in range(SCALE):
                    colour = colour_at(px + (sx + 0.5) / SCALE, py + (sy + 0.5) / SCALE)
                    if colour is not None:
                        covered += 1
                        total = [t + c for t, c in zip(total, colour)]
            rgb = [round(t / covered) for t in total] if covered else [0, 0, 0]
            row += bytes(rgb + [round(255 * covered / SCALE ** 2)])
        rows.append(bytes(row))
    return b"".join(rows)


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png():
    header = struct.pack(">IIBBBBB", SIZE, SIZE, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(pixels(), 9)) + chunk(b"IEND", b"")


if __name__ == "__main__":
    with open(sys.argv[1] if len(sys.argv) > 1 else "icon.png", "wb") as out:
        out.write(png())
