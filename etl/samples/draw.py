"""Procedural product-style garment images: synthetic stand-ins for Polyvore / DeepFashion photos.

``render(Garment(...), size)`` draws one garment centred on a white square with Pillow + numpy
only; the same arguments always give byte-identical pixels.  ``silhouette`` is the 0/255 mask of
the same drawing.  Shapes are drawn in unit coordinates on a 2x canvas and box-reduced, so any
``size`` >= 16 works (about 1 ms per 128 px image).  What each attribute looks like:

category (``shape`` 0/1/2 picks a variant)
  tops        torso, sleeves at the shoulders, neckline: regular / cropped / long flared tunic
  outerwear   wide torso with centre opening, lapel lines, buttons, pockets: coat / jacket / belted trench
  all-body    fitted bodice with waist seam: flared dress / jumpsuit (two legs) / mini dress
  bottoms     trousers (two legs) / A-line skirt / shorts
  shoes       side view, toe to the right: sneaker / stiletto pump / tall boot
  bags        tote with two handles / clutch with flap and thin strap / backpack with pocket
  jewellery   bead necklace with pendant / ring with gem / pair of drop earrings
  accessories belt with buckle / watch (band and round face) / necktie
  hats        dome crown on a wide brim / cap with visor / beanie with cuff and pompom
  sunglasses  two lenses, bridge and arms: round / rectangular / aviator lenses
  scarves     loop with two fringed tails / long fringed band / triangular shawl with fringe
sleeve (tops, outerwear, all-body; ignored elsewhere): sleeveless = none; short = wide flap at
  ~50 degrees ending at the upper arm; three-quarter = to the forearm (~35 degrees);
  long = to the wrist (~25 degrees).  Longer sleeves always add garment pixels.
neck (same categories): round = small shallow U cut; v-neck = deep V cut; square = rectangular
  cut; boat = wide shallow slit; turtleneck = band standing above the shoulders with a fold line;
  collar = stand with two outlined points, a small notch and a button placket; scoop = wide deep U.
pattern (inside the silhouette; ``colour`` keeps >= ~55% of the fill except for gradient):
  solid; horizontal / vertical stripes (accent bands, period size/8); dots (staggered accent
  dots); check (gingham: accent bands both ways, colour/accent blend where only one crosses);
  floral (staggered 5-petal accent flowers with dark centres, period size/5.5); zigzag (chevron
  accent lines); diagonal (accent stripes at 45 degrees); gradient (colour at the top of the
  garment fading to accent at its bottom); graphic (one accent star in a ring at the centre).
A thin darker outline (lighter for very dark colours) and detail lines in the same ink, clipped
to the garment, keep light garments visible on white.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from etl.deepfashion import NECKS, PATTERNS, SLEEVES  # the release's vocabularies: what the codes mean
from etl.samples.shapes import N_SHAPES, SEMANTIC_CATEGORIES, SHAPES, Pen, Recorder

SUPERSAMPLE = 2
WHITE = (255, 255, 255)


@dataclass(frozen=True)
class Garment:
    category: str                      # one of SEMANTIC_CATEGORIES
    colour: tuple[int, int, int]       # main RGB colour
    accent: tuple[int, int, int] = (255, 255, 255)  # second colour used by patterns
    pattern: int = 0                   # index into PATTERNS
    sleeve: int = 3                    # index into SLEEVES (tops, outerwear, all-body)
    neck: int = 0                      # index into NECKS (tops, outerwear, all-body)
    shape: int = 0                     # per-category variant 0-2, see the module docstring

    def __post_init__(self) -> None:
        if self.category not in SEMANTIC_CATEGORIES:
            raise ValueError(f"category must be one of {SEMANTIC_CATEGORIES}, got {self.category!r}")
        for name in ("colour", "accent"):
            object.__setattr__(self, name, _rgb(name, getattr(self, name)))
        for name, n in (("pattern", len(PATTERNS)), ("sleeve", len(SLEEVES)),
                        ("neck", len(NECKS)), ("shape", N_SHAPES)):
            object.__setattr__(self, name, _index(name, getattr(self, name), n))


def _is_int(v, lo: int, hi: int) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and lo <= v <= hi


def _index(name: str, v, n: int) -> int:
    if not _is_int(v, 0, n - 1):
        raise ValueError(f"{name} must be an int in [0, {n - 1}], got {v!r}")
    return int(v)


def _rgb(name: str, v) -> tuple[int, int, int]:
    if not (isinstance(v, (tuple, list, np.ndarray)) and len(v) == 3 and all(_is_int(c, 0, 255) for c in v)):
        raise ValueError(f"{name} must be three ints in [0, 255], got {v!r}")
    return tuple(int(c) for c in v)


def _draw_mask(g: Garment, size) -> tuple[Image.Image, Recorder]:
    if not _is_int(size, 16, 1 << 14):
        raise ValueError(f"size must be an int in [16, 16384], got {size!r}")
    if not isinstance(g, Garment):
        raise ValueError(f"garment must be a Garment, got {type(g).__name__}")
    s = int(size) * SUPERSAMPLE
    mask, ink = Image.new("L", (s, s), 0), Recorder()
    SHAPES[g.category](Pen(mask, s), ink, g)
    return mask, ink


def render(g: Garment, size: int = 128) -> Image.Image:
    """RGB image, white background, garment filled with its pattern inside its silhouette."""
    mask, ink = _draw_mask(g, size)
    s = mask.width
    canvas = Image.new("RGB", (s, s), WHITE)
    canvas.paste(_fill(g, s, mask), (0, 0), mask)
    outline, detail = _inks(g.colour)
    canvas.paste(outline, (0, 0), ImageChops.subtract(mask, _erode(mask, SUPERSAMPLE)))  # ~1 px wide
    if ink.ops:  # detail strokes, clipped to the garment so they never spill onto the background
        lines = Image.new("L", (s, s), 0)
        ink.replay(Pen(lines, s))
        canvas.paste(detail, (0, 0), ImageChops.darker(lines, mask))
    return canvas.reduce(SUPERSAMPLE)


def silhouette(g: Garment, size: int = 128) -> Image.Image:
    """Mode 'L' mask (255 inside the garment, 0 outside) of the same drawing, no pattern."""
    return _draw_mask(g, size)[0].reduce(SUPERSAMPLE).point(_THRESHOLD)


_THRESHOLD = [0] * 128 + [255] * 128


def _erode(mask: Image.Image, r: int) -> Image.Image:
    """Square min-filter of radius ``r``: ImageFilter.MinFilter(2r+1), but ~40x faster."""
    a = np.pad(np.asarray(mask), r)
    h = a[:, : a.shape[1] - 2 * r].copy()
    for i in range(1, 2 * r + 1):
        np.minimum(h, a[:, i: a.shape[1] - 2 * r + i], out=h)
    v = h[: h.shape[0] - 2 * r].copy()
    for i in range(1, 2 * r + 1):
        np.minimum(v, h[i: h.shape[0] - 2 * r + i], out=v)
    return Image.fromarray(v, "L")


# ---------------------------------------------------------------- colours and pattern fills
def _shade(c, f: float) -> tuple[int, int, int]:
    return tuple(int(v * f) for v in c)


def _inks(c) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(outline, detail) colours: darker than the garment, or lighter when it is very dark."""
    if 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] > 65:
        return _shade(c, 0.6), _shade(c, 0.5)
    return tuple(int(v + (255 - v) * 0.35) for v in c), tuple(int(v + (255 - v) * 0.45) for v in c)


def _fill(g: Garment, s: int, mask: Image.Image):
    """The pattern image (or plain colour) pasted through the silhouette mask."""
    name = PATTERNS[g.pattern]
    if name == "solid":
        return g.colour
    x0, y0, x1, y1 = mask.getbbox() or (0, 0, s, s)
    if name == "gradient":
        t = np.clip((np.arange(s, dtype=np.float32) - y0) / max(1, y1 - y0 - 1), 0, 1)[:, None]
        rows = np.rint(np.float32(g.colour) * (1 - t) + np.float32(g.accent) * t).astype(np.uint8)
        return Image.fromarray(np.ascontiguousarray(np.broadcast_to(rows[:, None], (s, s, 3))), "RGB")
    if name == "graphic":
        im = Image.new("RGB", (s, s), g.colour)
        cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, 0.24 * min(x1 - x0, y1 - y0)
        row = np.asarray(mask)[int(cy)] > 0
        if not row[int(cx)] and row.any():  # centre in a gap (sunglasses, necklace): widest run instead
            run = np.flatnonzero(np.diff(np.concatenate(([0], row.view(np.int8), [0])))).reshape(-1, 2)
            a, b = run[np.argmax(run[:, 1] - run[:, 0])]
            cx, r = (a + b) / 2, min(r, 0.4 * (b - a))
        d = ImageDraw.Draw(im)
        d.ellipse((cx - r, cy - r, cx + r, cy + r), outline=g.accent, width=max(1, round(r * 0.16)))
        d.polygon([(cx + r * (0.72, 0.3)[i % 2] * math.sin(i * math.pi / 5),
                    cy - r * (0.72, 0.3)[i % 2] * math.cos(i * math.pi / 5)) for i in range(10)], fill=g.accent)
        return im
    im = _labels(g.pattern, s).copy()
    blend = tuple((a + b) // 2 for a, b in zip(g.colour, g.accent))
    im.putpalette(bytes(v for c in (g.colour, g.accent, blend, _shade(g.accent, 0.55)) for v in c))
    return im.convert("RGB")


@functools.lru_cache(maxsize=64)
def _labels(pattern: int, s: int) -> Image.Image:
    """'P' image of palette indices (0 colour, 1 accent, 2 blend, 3 dark accent), cached per size."""
    name, p = PATTERNS[pattern], max(6.0, s / 8)
    y, x = np.mgrid[0:s, 0:s].astype(np.float32)
    if name in ("dots", "floral"):  # staggered motifs drawn once on a 2p x 2p tile, then tiled
        p = max(8.0, s / 5.5) if name == "floral" else p
        tile = Image.new("L", (round(2 * p), round(2 * p)), 0)
        pen = Pen(tile, p)
        for cx, cy in ((0.5, 0.5), (1.5, 0.5), (0.0, 1.5), (1.0, 1.5), (2.0, 1.5)):
            if name == "dots":
                pen.circle(cx, cy, 0.25, 1)
                continue
            for a in range(5):
                pen.circle(cx + 0.14 * math.sin(a * 1.2566), cy - 0.14 * math.cos(a * 1.2566), 0.12, 1)
            pen.circle(cx, cy, 0.07, 3)
        n = math.ceil(s / (2 * p)) + 1
        lab = np.tile(np.asarray(tile), (n, n))[:s, :s]
    elif name == "horizontal-stripes":
        lab = (y % p) < 0.35 * p
    elif name == "vertical-stripes":
        lab = (x % p) < 0.35 * p
    elif name == "check":
        lab = np.choose(((y % p) < 0.25 * p).astype(np.uint8) + ((x % p) < 0.25 * p), [0, 2, 1])
    elif name == "zigzag":
        lab = ((y + 0.5 * p * np.abs(2 * ((x / p) % 1) - 1)) % p) < 0.3 * p
    else:  # diagonal
        q = p * math.sqrt(2)
        lab = ((x + y) % q) < 0.35 * q
    return Image.fromarray(np.ascontiguousarray(lab, dtype=np.uint8), "P")
