"""A PIL header strip (caption + legend) put above any rendered view, plus dashed lines PIL lacks."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pointpillars_trt.viz.style import GT_COLOR, class_color

HEADER_PX = 48


def _font(size: int = 13) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed bitmap font
        return ImageFont.load_default()


def add_header(img: Image.Image, text: str, class_names: Sequence[str], with_gt: bool,
               header_px: int = HEADER_PX, gt_dashed: bool = True) -> Image.Image:
    """A new image: a dark strip with the caption and a colour legend, then `img` below it."""
    out = Image.new("RGB", (img.width, img.height + header_px), (25, 25, 25))
    out.paste(img, (0, header_px))
    d = ImageDraw.Draw(out)
    font = _font()
    d.text((8, 6), text, fill=(235, 235, 235), font=font)
    x = 8
    entries = [(n, class_color(n, class_names), False) for n in class_names]
    if with_gt:
        entries.append(("ground truth", GT_COLOR, gt_dashed))
    for name, color, dashed in entries:
        y = 28
        if dashed:
            dashed_line(d, (x, y + 6), (x + 18, y + 6), GT_COLOR, width=2)
        else:
            d.rectangle([x, y, x + 12, y + 12], fill=color)
        d.text((x + 22, y - 1), name, fill=(235, 235, 235), font=font)
        x += 32 + int(d.textlength(name, font=font)) + 14
    return out


def dashed_line(draw: ImageDraw.ImageDraw, p0: Sequence[float], p1: Sequence[float], color: tuple[int, int, int],
                width: int = 1, dash: float = 6.0, gap: float = 4.0) -> None:
    """A dashed segment that always starts (and so shows its corner) with a dash."""
    x0, y0 = p0
    x1, y1 = p1
    length = math.hypot(x1 - x0, y1 - y0)
    if length < 1e-9:
        return
    ux, uy = (x1 - x0) / length, (y1 - y0) / length
    for s in np.arange(0.0, length, dash + gap):
        e = min(s + dash, length)
        draw.line([(x0 + ux * s, y0 + uy * s), (x0 + ux * e, y0 + uy * e)], fill=color, width=width)
