#!/usr/bin/env python3
"""Draw what a command printed at a colour terminal as a PNG (for the README's pictures).

    FORCE_COLOR=1 COLORTERM=truecolor COLUMNS=110 bertcli sentiment --explain -f table "..." \\
        | python3 scripts/terminal-png.py docs/explain-sentiment.png --title 'bertcli sentiment --explain ...'

It reads ANSI-coloured text on stdin (rich writes it when FORCE_COLOR is set), lets rich parse
it (``Text.from_ansi``) and lay it out (``Console.render_lines``: the cells each character takes),
and paints every segment with Pillow in DejaVu Sans Mono on a dark terminal background: the
colours, bold and underline rich wrote, nothing re-styled. Needs Pillow (matplotlib, the
``viz`` extra, brings it) and the DejaVu fonts (matplotlib ships them; Debian's fonts-dejavu too).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

BG = (30, 30, 30)
FG = (212, 212, 212)
TITLE = (120, 200, 120)


def font_path(bold: bool = False) -> str:
    name = "DejaVuSansMono-Bold.ttf" if bold else "DejaVuSansMono.ttf"
    for d in ("/usr/share/fonts/truetype/dejavu",):
        if (Path(d) / name).is_file():
            return str(Path(d) / name)
    import matplotlib

    return str(Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf" / name)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("png")
    ap.add_argument("--title", help="a first line, as the prompt and command that printed the rest")
    ap.add_argument("--size", type=int, default=15, help="font size in pixels")
    ap.add_argument("--width", type=int, default=0, help="columns (default: the longest line)")
    a = ap.parse_args()
    from PIL import Image, ImageDraw, ImageFont
    from rich.cells import cell_len
    from rich.console import Console
    from rich.text import Text

    raw = sys.stdin.read()
    text = Text.from_ansi(raw.rstrip("\n"))
    cols = a.width or max(cell_len(line.plain) for line in text.split("\n"))
    console = Console(width=cols, color_system="truecolor", force_terminal=True, legacy_windows=False)
    lines = console.render_lines(text, console.options.update(width=cols, no_wrap=True), pad=False)
    regular = ImageFont.truetype(font_path(), a.size)
    bold = ImageFont.truetype(font_path(True), a.size)
    cw = regular.getlength("M")
    lh = int(a.size * 1.35)
    pad = 16
    top = pad + (lh + 6 if a.title else 0)
    img = Image.new("RGB", (int(cols * cw) + 2 * pad, top + lh * len(lines) + pad), BG)
    draw = ImageDraw.Draw(img)
    if a.title:
        draw.text((pad, pad), "$ " + a.title, font=regular, fill=TITLE)
    for row, segs in enumerate(lines):
        x = pad
        y = top + row * lh
        for seg in segs:
            if not seg.text:
                continue
            st = seg.style
            w = cell_len(seg.text) * cw
            fg = FG
            if st is not None and st.color is not None and not st.color.is_default:
                fg = tuple(st.color.get_truecolor())
            if st is not None and st.bgcolor is not None and not st.bgcolor.is_default:
                draw.rectangle([x, y, x + w, y + lh], fill=tuple(st.bgcolor.get_truecolor()))
            f = bold if st is not None and st.bold else regular
            cx = x
            for ch in seg.text:  # cell by cell, so wide characters keep the grid
                draw.text((cx, y + (lh - a.size) // 2), ch, font=f, fill=fg)
                cx += cell_len(ch) * cw
            if st is not None and st.underline:
                draw.line([x, y + lh - 3, x + w, y + lh - 3], fill=fg, width=1)
            x += w
    img.save(a.png)
    print(f"wrote {a.png} ({img.width}x{img.height})", file=sys.stderr)


if __name__ == "__main__":
    main()
