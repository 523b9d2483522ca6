"""Renders an output folder's report.html in headless Chromium and checks the picture.

Usage: check_report.py OUT_DIR [CHROMIUM]
Checks: Chromium writes a PNG of the requested size (1200 x 1600); the picture is not blank (a
real share of non-white pixels, several distinct colours, including the threshold lines' red).
Prints one line per check and exits non-zero on any failure. Decodes the PNG with zlib (no
imaging library needed).
"""
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

WIDTH, HEIGHT = 1200, 1600


def read_png(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, chunks, header = 8, [], None
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
        position += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, f"unsupported PNG layout {header}"
    channels = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    rows, previous, offset = [], bytearray(stride), 0
    for _ in range(height):
        kind = raw[offset]
        line = bytearray(raw[offset + 1:offset + 1 + stride])
        offset += 1 + stride
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                estimate = left + up - corner
                pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        rows.append(bytes(line))
        previous = line
    return width, height, channels, rows


def main():
    folder = sys.argv[1]
    chromium = sys.argv[2] if len(sys.argv) > 2 else (shutil.which("chromium") or shutil.which("chromium-browser"))
    failures = 0

    def check(name, ok, detail=""):
        nonlocal failures
        print(("ok   " if ok else "FAIL ") + name + (f": {detail}" if detail else ""))
        failures += 0 if ok else 1

    page = os.path.abspath(os.path.join(folder, "report.html"))
    check("report.html exists", os.path.exists(page), page)
    check("chromium is installed", chromium is not None)
    if failures:
        sys.exit(1)
    with tempfile.TemporaryDirectory() as scratch:
        picture = os.path.join(scratch, "report.png")
        result = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                 f"--user-data-dir={scratch}/profile", f"--window-size={WIDTH},{HEIGHT}",
                                 f"--screenshot={picture}", "file://" + page],
                                capture_output=True, text=True, timeout=120)
        rendered = result.returncode == 0 and os.path.exists(picture)
        check("chromium rendered a PNG", rendered, "" if rendered else result.stderr[-800:])
        if failures:
            sys.exit(1)
        width, height, channels, rows = read_png(picture)
        check("picture size", (width, height) == (WIDTH, HEIGHT), f"{width} x {height}")
        colours, inked, red = set(), 0, 0
        for row in rows:
            for x in range(0, width * channels, channels):
                pixel = row[x:x + 3]
                colours.add(bytes(pixel))
                if pixel != b"\xff\xff\xff":
                    inked += 1
                if pixel[0] > 180 and pixel[1] < 80 and pixel[2] < 80:
                    red += 1
        share = inked / (width * height)
        check("not blank: non-white share", share > 0.02, f"{share:.3f}")
        check("several colours (text, bars, lines)", len(colours) >= 16, f"{len(colours)} colours")
        check("threshold lines drawn (red pixels)", red >= 50, f"{red} red pixels")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
