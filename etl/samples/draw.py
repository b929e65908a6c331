"""Procedural product-style garment images: the synthetic stand-ins for Polyvore / DeepFashion photos.

``render(Garment(...), size)`` draws one garment centred on a white square in pure Pillow + numpy;
the same arguments always give byte-identical pixels.  ``silhouette`` returns the 0/255 mask of
the same drawing.  Everything is drawn on a 2x canvas in unit coordinates and box-reduced, so any
``size`` >= 16 works.  What each attribute looks like:

category (silhouette; ``shape`` 0/1/2 picks a variant)
  tops        torso trapezoid, sleeves at the shoulders, neckline at the top
  outerwear   wider torso down to the hips, centre opening line, lapel lines, buttons, pockets
  all-body    dress: fitted bodice, waist seam, flared skirt almost to the bottom edge
  bottoms     trousers (two legs) / A-line skirt / shorts
  shoes       side view, toe to the right: sneaker / stiletto pump / tall boot
  bags        tote with two handles / clutch with flap and thin strap / backpack with pocket
  jewellery   bead necklace with pendant / ring with gem / pair of drop earrings
  accessories belt with buckle / watch (band and round face) / necktie
  hats        dome crown on a wide brim / cap with visor / beanie with cuff and pompom
  sunglasses  two lenses, bridge and arms: round / rectangular / aviator lenses
  scarves     loop with two fringed tails / long fringed band / triangular shawl with fringe
sleeve (tops, outerwear, all-body): sleeveless = none; short = flap out at ~50 degrees to the
  upper arm; three-quarter = to the forearm (~35 degrees); long = to the wrist (~25 degrees).
neck (same categories): round = small shallow U cut; v-neck = deep V cut; square = rectangular cut;
  boat = wide shallow slit; turtleneck = band standing above the shoulders with a fold line;
  collar = stand with two outlined points, a small notch and a button placket; scoop = wide deep U.
pattern (fill inside the silhouette; ``colour`` keeps >= ~55% of the fill except for gradient):
  solid; horizontal / vertical stripes (accent bands, period size/8); dots (staggered accent
  dots); check (gingham: accent bands both ways, blended where single); floral (staggered
  5-petal accent flowers with dark centres, period ~size/5.5); zigzag (chevron accent lines);
  diagonal (accent stripes at 45 degrees); gradient (colour at the top of the garment fading to
  accent at the bottom); graphic (one accent star inside a ring at the garment's centre).
A thin darker outline (lighter for very dark colours) and detail lines in the same ink keep
light garments visible on white.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw

SEMANTIC_CATEGORIES: tuple[str, ...] = (
    "tops", "bottoms", "shoes", "bags", "jewellery", "accessories",
    "hats", "sunglasses", "scarves", "outerwear", "all-body",
)
NECKS: tuple[str, ...] = ("round", "v-neck", "square", "boat", "turtleneck", "collar", "scoop")
SLEEVES: tuple[str, ...] = ("sleeveless", "short", "three-quarter", "long")
PATTERNS: tuple[str, ...] = (
    "solid", "horizontal-stripes", "vertical-stripes", "dots", "check",
    "floral", "zigzag", "diagonal", "gradient", "graphic",
)
N_SHAPES = 3
SUPERSAMPLE = 2
WHITE = (255, 255, 255)


@dataclass(frozen=True)
class Garment:
    category: str
    colour: tuple[int, int, int]
    accent: tuple[int, int, int] = (255, 255, 255)
    pattern: int = 0
    sleeve: int = 3
    neck: int = 0
    shape: int = 0

    def __post_init__(self) -> None:
        if self.category not in SEMANTIC_CATEGORIES:
            raise ValueError(f"category must be one of {SEMANTIC_CATEGORIES}, got {self.category!r}")
        for name in ("colour", "accent"):
            object.__setattr__(self, name, _rgb(name, getattr(self, name)))
        for name, n in (("pattern", len(PATTERNS)), ("sleeve", len(SLEEVES)),
                        ("neck", len(NECKS)), ("shape", N_SHAPES)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < n:
                raise ValueError(f"{name} must be an int in [0, {n - 1}], got {v!r}")
            object.__setattr__(self, name, int(v))


def _rgb(name: str, v) -> tuple[int, int, int]:
    try:
        t = tuple(int(c) for c in v)
        ok = len(t) == 3 and all(0 <= c <= 255 for c in t) and all(float(c) == int(c) for c in v)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be three ints in [0, 255], got {v!r}")
    return t


def _check_size(size) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 16:
        raise ValueError(f"size must be an int >= 16, got {size!r}")
    return int(size)


def render(g: Garment, size: int = 128) -> Image.Image:
    """RGB image, white background, garment filled with its pattern inside its silhouette."""
    size = _check_size(size)
    s = size * SUPERSAMPLE
    mask = Image.new("L", (s, s), 0)
    ink = _Recorder()
    _SHAPES[g.category](_Pen(mask, s), ink, g)
    canvas = Image.new("RGB", (s, s), WHITE)
    canvas.paste(_fill(g, s, mask), (0, 0), mask)
    edge = ImageChops.subtract(mask, _erode(mask, SUPERSAMPLE))
    canvas.paste(_shade(g.colour, 0.6) if _lum(g.colour) > 60 else _tint(g.colour, 0.35), (0, 0), edge)
    if ink.ops:  # detail strokes, clipped to the garment so they never spill onto the background
        lines = Image.new("L", (s, s), 0)
        pen = _Pen(lines, s)
        for name, args, kw in ink.ops:
            getattr(pen, name)(*args, **kw)
        canvas.paste(_ink(g.colour), (0, 0), ImageChops.darker(lines, mask))
    return canvas.reduce(SUPERSAMPLE)


def silhouette(g: Garment, size: int = 128) -> Image.Image:
    """Mode 'L' mask (255 inside the garment, 0 outside) of the same drawing, no pattern."""
    size = _check_size(size)
    s = size * SUPERSAMPLE
    mask = Image.new("L", (s, s), 0)
    _SHAPES[g.category](_Pen(mask, s), _Recorder(), g)
    return mask.reduce(SUPERSAMPLE).point(_THRESHOLD)


_THRESHOLD = [0] * 128 + [255] * 128


def _erode(mask: Image.Image, r: int) -> Image.Image:
    """Square min-filter of radius ``r`` (= ImageFilter.MinFilter(2r+1), ~40x faster in numpy)."""
    a = np.pad(np.asarray(mask), r)
    h = a[:, : a.shape[1] - 2 * r].copy()
    for i in range(1, 2 * r + 1):
        np.minimum(h, a[:, i: a.shape[1] - 2 * r + i], out=h)
    v = h[: h.shape[0] - 2 * r].copy()
    for i in range(1, 2 * r + 1):
        np.minimum(v, h[i: h.shape[0] - 2 * r + i], out=v)
    return Image.fromarray(v, "L")


# ---------------------------------------------------------------- colours and pattern fills
def _lum(c) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _shade(c, f: float) -> tuple[int, int, int]:
    return tuple(int(v * f) for v in c)


def _tint(c, f: float) -> tuple[int, int, int]:
    return tuple(int(v + (255 - v) * f) for v in c)


def _mix(a, b, f: float = 0.5) -> tuple[int, int, int]:
    return tuple(int(round(x * (1 - f) + y * f)) for x, y in zip(a, b))


def _ink(c) -> tuple[int, int, int]:
    """Detail-line colour: darker than the garment, or lighter when the garment is very dark."""
    return _shade(c, 0.5) if _lum(c) > 70 else _tint(c, 0.45)


def _fill(g: Garment, s: int, mask: Image.Image):
    """The pattern image (or plain colour) that gets pasted through the silhouette mask."""
    name = PATTERNS[g.pattern]
    if name == "solid":
        return g.colour
    if name == "gradient":
        box = mask.getbbox() or (0, 0, s, s)
        t = np.clip((np.arange(s, dtype=np.float32) - box[1]) / max(1, box[3] - box[1] - 1), 0, 1)
        col = np.asarray(g.colour, np.float32) * (1 - t[:, None]) + np.asarray(g.accent, np.float32) * t[:, None]
        rows = np.rint(col).astype(np.uint8)[:, None, :]
        return Image.fromarray(np.ascontiguousarray(np.broadcast_to(rows, (s, s, 3))), "RGB")
    if name == "graphic":
        im = Image.new("RGB", (s, s), g.colour)
        x0, y0, x1, y1 = mask.getbbox() or (0, 0, s, s)
        cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, 0.2 * min(x1 - x0, y1 - y0)
        d = ImageDraw.Draw(im)
        d.ellipse((cx - r, cy - r, cx + r, cy + r), outline=g.accent, width=max(1, round(r * 0.16)))
        star = [(cx + r * (0.72 if i % 2 == 0 else 0.3) * math.sin(i * math.pi / 5),
                 cy - r * (0.72 if i % 2 == 0 else 0.3) * math.cos(i * math.pi / 5)) for i in range(10)]
        d.polygon(star, fill=g.accent)
        return im
    im = _labels(g.pattern, s).copy()
    palette = (g.colour, g.accent, _mix(g.colour, g.accent), _shade(g.accent, 0.55))
    im.putpalette(bytes(v for c in palette for v in c))
    return im.convert("RGB")


@functools.lru_cache(maxsize=64)
def _labels(pattern: int, s: int) -> Image.Image:
    """'P' image of palette indices (0 colour, 1 accent, 2 blend, 3 dark accent), cached per size."""
    name = PATTERNS[pattern]
    p = max(6.0, s / 8)
    y, x = np.mgrid[0:s, 0:s].astype(np.float32)
    if name in ("dots", "floral"):
        p = max(8.0, s / 5.5) if name == "floral" else p
        n = math.ceil(s / (2 * p)) + 1
        tile = Image.new("L", (round(2 * p), round(2 * p)), 0)
        d = ImageDraw.Draw(tile)
        for cx, cy in ((0.5, 0.5), (1.5, 0.5), (0.0, 1.5), (1.0, 1.5), (2.0, 1.5)):
            cx, cy = cx * p, cy * p
            if name == "dots":
                r = 0.25 * p
                d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=1)
                continue
            r, off = 0.12 * p, 0.14 * p
            for k in range(5):
                a = 2 * math.pi * k / 5
                px, py = cx + off * math.sin(a), cy - off * math.cos(a)
                d.ellipse((px - r, py - r, px + r, py + r), fill=1)
            d.ellipse((cx - 0.07 * p, cy - 0.07 * p, cx + 0.07 * p, cy + 0.07 * p), fill=3)
        lab = np.tile(np.asarray(tile), (n, n))[:s, :s]
    elif name == "horizontal-stripes":
        lab = (y % p) < 0.35 * p
    elif name == "vertical-stripes":
        lab = (x % p) < 0.35 * p
    elif name == "check":
        lab = ((y % p) < 0.25 * p).astype(np.uint8) + ((x % p) < 0.25 * p)
        lab = np.choose(lab, [0, 2, 1])
    elif name == "zigzag":
        tri = 0.5 * p * np.abs(2 * ((x / p) % 1) - 1)
        lab = ((y + tri) % p) < 0.3 * p
    elif name == "diagonal":
        q = p * math.sqrt(2)
        lab = ((x + y) % q) < 0.35 * q
    else:
        raise AssertionError(name)
    return Image.fromarray(np.ascontiguousarray(lab, dtype=np.uint8), "P")


# ---------------------------------------------------------------- drawing helpers
class _Pen:
    """ImageDraw in unit coordinates (0..1 across the canvas); widths are fractions too."""

    def __init__(self, im: Image.Image, s: int):
        self.d, self.s = ImageDraw.Draw(im), s

    def _pts(self, pts):
        return [(x * self.s, y * self.s) for x, y in pts]

    def _w(self, w):
        return max(1, round(w * self.s))

    def poly(self, pts, fill=255):
        self.d.polygon(self._pts(pts), fill=fill)

    def ellipse(self, box, fill=255, width=None):
        b = [v * self.s for v in box]
        if width is None:
            self.d.ellipse(b, fill=fill)
        else:
            self.d.ellipse(b, outline=fill, width=self._w(width))

    def rect(self, box, fill=255, radius=0.0, width=None):
        b = [v * self.s for v in box]
        kw = {"fill": fill} if width is None else {"outline": fill, "width": self._w(width)}
        self.d.rounded_rectangle(b, radius=radius * self.s, **kw)

    def circle(self, cx, cy, r, fill=255):
        self.ellipse((cx - r, cy - r, cx + r, cy + r), fill)

    def line(self, pts, w=0.012, fill=255):
        self.d.line(self._pts(pts), fill=fill, width=self._w(w), joint="curve")

    def arc(self, box, start, end, w=0.03, fill=255):
        self.d.arc([v * self.s for v in box], start, end, fill=fill, width=self._w(w))


class _Recorder:
    """Collects detail strokes (drawn in ink after the fill); a no-op for silhouette()."""

    def __init__(self):
        self.ops = []

    def __getattr__(self, name):
        return lambda *a, **kw: self.ops.append((name, a, kw))


def _mirror(pts):
    return [(1 - x, y) for x, y in pts]


def _both(fn, pts):
    fn(pts)
    fn(_mirror(pts))


# ---------------------------------------------------------------- garments with sleeves and necks
_SLEEVE_GEOM = {1: (0.16, 52, 0.15), 2: (0.30, 35, 0.12), 3: (0.44, 24, 0.11)}  # length, degrees, cuff


def _sleeves(m, g, a, b, scale=1.0):
    if g.sleeve == 0:
        return
    length, deg, cuff = _SLEEVE_GEOM[g.sleeve]
    t = math.radians(deg)
    ox, oy = a[0] - math.sin(t) * length * scale, a[1] + math.cos(t) * length * scale
    ix, iy = ox + math.cos(t) * cuff * scale, oy + math.sin(t) * cuff * scale
    _both(m.poly, [a, (ox, oy), (ix, iy), b])


def _neck(m, k, g, ny, hw=0.09):
    name, c = NECKS[g.neck], 0.5
    if name == "turtleneck":
        m.rect((c - 0.8 * hw, ny - 0.09, c + 0.8 * hw, ny + 0.02))
        k.line([(c - 0.8 * hw, ny - 0.045), (c + 0.8 * hw, ny - 0.045)], 0.01)
    elif name == "collar":
        m.rect((c - hw, ny - 0.045, c + hw, ny + 0.01))
        m.poly([(c - 0.6 * hw, ny - 0.045), (c + 0.6 * hw, ny - 0.045), (c, ny + 0.05)], 0)
        _both(k.line, [(c - hw, ny - 0.03), (c - 0.85 * hw, ny + 0.08), (c - 0.05 * hw, ny + 0.05)])
        k.line([(c, ny + 0.06), (c, ny + 0.30)], 0.008)
        for i in range(3):
            k.circle(c + 0.025, ny + 0.11 + 0.08 * i, 0.011)
    elif name == "round":
        m.ellipse((c - 0.95 * hw, ny - 0.06, c + 0.95 * hw, ny + 0.065), 0)
    elif name == "v-neck":
        m.poly([(c - 0.95 * hw, ny - 0.01), (c + 0.95 * hw, ny - 0.01), (c, ny + 0.17)], 0)
    elif name == "square":
        m.rect((c - 0.9 * hw, ny - 0.01, c + 0.9 * hw, ny + 0.10), 0)
    elif name == "boat":
        m.ellipse((c - 1.9 * hw, ny - 0.04, c + 1.9 * hw, ny + 0.05), 0)
    elif name == "scoop":
        m.ellipse((c - 1.45 * hw, ny - 0.15, c + 1.45 * hw, ny + 0.15), 0)


def _upper(m, k, g, ny, sh, ay, hem, hem_hw, scale=1.0):
    """Torso from the neck line ``ny`` to ``hem``; shoulders at 0.5 +- ``sh``, armpits at ``ay``."""
    a, b = (0.5 - sh, ny + 0.04), (0.5 - sh + 0.01, ay)
    m.poly([a, (0.41, ny), (0.59, ny), (0.5 + sh, ny + 0.04), (0.5 + sh - 0.01, ay),
            (0.5 + hem_hw, hem), (0.5 - hem_hw, hem), b])
    _sleeves(m, g, a, b, scale)


def _tops(m, k, g):
    _upper(m, k, g, 0.19, 0.20, 0.40, 0.78, 0.18)
    _neck(m, k, g, 0.19)
    k.line([(0.33, 0.75), (0.67, 0.75)], 0.006)


def _outerwear(m, k, g):
    ny, hem = 0.13, 0.93
    _upper(m, k, g, ny, 0.22, 0.35, hem, 0.235, 1.1)
    _neck(m, k, g, ny)
    k.line([(0.5, ny + 0.1), (0.5, hem)], 0.012)
    _both(k.line, [(0.41, ny + 0.005), (0.46, ny + 0.2), (0.5, ny + 0.26)])
    for i in range(4):
        k.circle(0.535, ny + 0.30 + 0.13 * i, 0.014)
    _both(k.line, [(0.32, hem - 0.22), (0.43, hem - 0.22)])


def _all_body(m, k, g):
    ny, waist = 0.10, 0.44
    m.poly([(0.40, waist), (0.60, waist), (0.85, 0.93), (0.5, 0.96), (0.15, 0.93)])
    m.poly([(0.35, ny + 0.04), (0.41, ny), (0.59, ny), (0.65, ny + 0.04), (0.64, 0.27),
            (0.60, waist + 0.01), (0.40, waist + 0.01), (0.36, 0.27)])
    _sleeves(m, g, (0.35, ny + 0.04), (0.36, 0.27), 0.85)
    _neck(m, k, g, ny, 0.08)
    k.line([(0.40, waist), (0.60, waist)], 0.012)


# ---------------------------------------------------------------- the other categories
def _bottoms(m, k, g):
    if g.shape == 0:  # trousers
        m.poly([(0.31, 0.07), (0.69, 0.07), (0.74, 0.94), (0.53, 0.94), (0.5, 0.36), (0.47, 0.94), (0.26, 0.94)])
        k.line([(0.31, 0.13), (0.69, 0.13)], 0.01)
        k.line([(0.5, 0.13), (0.5, 0.30)], 0.008)
    elif g.shape == 1:  # skirt
        m.poly([(0.35, 0.12), (0.65, 0.12), (0.81, 0.76), (0.5, 0.78), (0.19, 0.76)])
        k.line([(0.35, 0.18), (0.65, 0.18)], 0.01)
    else:  # shorts
        m.poly([(0.28, 0.16), (0.72, 0.16), (0.79, 0.62), (0.53, 0.64), (0.5, 0.44), (0.47, 0.64), (0.21, 0.62)])
        k.line([(0.28, 0.22), (0.72, 0.22)], 0.01)
        k.line([(0.5, 0.22), (0.5, 0.36)], 0.008)


def _shoes(m, k, g):
    if g.shape == 0:  # sneaker
        m.poly([(0.09, 0.50), (0.30, 0.46), (0.42, 0.55), (0.62, 0.58), (0.82, 0.64), (0.92, 0.74),
                (0.92, 0.81), (0.08, 0.81), (0.07, 0.60)])
        k.line([(0.08, 0.74), (0.92, 0.74)], 0.014)
        for i in range(4):
            x = 0.44 + 0.06 * i
            k.line([(x, 0.56 + 0.012 * i), (x + 0.05, 0.63 + 0.012 * i)], 0.01)
    elif g.shape == 1:  # stiletto pump
        m.poly([(0.13, 0.36), (0.20, 0.37), (0.40, 0.53), (0.58, 0.60), (0.80, 0.63), (0.91, 0.69),
                (0.91, 0.75), (0.70, 0.77), (0.45, 0.68), (0.25, 0.54), (0.15, 0.53)])
        m.poly([(0.15, 0.50), (0.25, 0.52), (0.21, 0.88), (0.18, 0.88)])
        k.line([(0.25, 0.54), (0.45, 0.67), (0.70, 0.75), (0.90, 0.73)], 0.01)
    else:  # boot
        m.poly([(0.22, 0.06), (0.52, 0.06), (0.53, 0.50), (0.72, 0.59), (0.88, 0.66), (0.92, 0.75),
                (0.92, 0.85), (0.18, 0.85), (0.20, 0.50)])
        k.line([(0.18, 0.78), (0.92, 0.78)], 0.014)
        k.line([(0.22, 0.12), (0.52, 0.12)], 0.01)


def _bags(m, k, g):
    if g.shape == 0:  # tote
        m.poly([(0.21, 0.40), (0.79, 0.40), (0.85, 0.88), (0.15, 0.88)])
        for dx in (-0.05, 0.05):
            m.arc((0.33 + dx, 0.14, 0.67 + dx, 0.66), 180, 360, 0.035)
        k.line([(0.21, 0.46), (0.79, 0.46)], 0.008)
    elif g.shape == 1:  # clutch
        m.arc((0.24, 0.14, 0.76, 0.80), 180, 360, 0.014)
        m.rect((0.13, 0.42, 0.87, 0.74), radius=0.04)
        k.line([(0.14, 0.44), (0.5, 0.60), (0.86, 0.44)], 0.012)
        k.circle(0.5, 0.60, 0.025)
    else:  # backpack
        m.arc((0.40, 0.10, 0.60, 0.34), 180, 360, 0.03)
        m.rect((0.24, 0.21, 0.76, 0.91), radius=0.12)
        k.rect((0.32, 0.58, 0.68, 0.84), radius=0.05, width=0.012)
        k.arc((0.28, 0.28, 0.72, 0.70), 200, 340, 0.01)


def _jewellery(m, k, g):
    if g.shape == 0:  # bead necklace with pendant
        m.arc((0.16, -0.10, 0.84, 0.66), 0, 180, 0.012)
        for i in range(13):
            a = math.radians(6 + 14 * i)
            m.circle(0.5 + 0.34 * math.cos(a), 0.28 + 0.38 * math.sin(a), 0.05)
        m.poly([(0.5, 0.66), (0.61, 0.79), (0.5, 0.95), (0.39, 0.79)])
    elif g.shape == 1:  # ring
        m.ellipse((0.22, 0.36, 0.78, 0.92), width=0.11)
        m.poly([(0.5, 0.12), (0.63, 0.25), (0.5, 0.40), (0.37, 0.25)])
        k.line([(0.37, 0.25), (0.63, 0.25)], 0.008)
    else:  # drop earrings
        for x in (0.30, 0.70):
            m.circle(x, 0.22, 0.045)
            m.line([(x, 0.22), (x, 0.42)], 0.015)
            m.ellipse((x - 0.11, 0.38, x + 0.11, 0.76))
            m.poly([(x - 0.09, 0.48), (x, 0.34), (x + 0.09, 0.48)])


def _accessories(m, k, g):
    if g.shape == 0:  # belt
        m.poly([(0.04, 0.44), (0.88, 0.44), (0.96, 0.51), (0.88, 0.58), (0.04, 0.58)])
        m.rect((0.14, 0.37, 0.30, 0.65), width=0.035)
        m.rect((0.175, 0.405, 0.265, 0.435), 0)
        m.rect((0.175, 0.585, 0.265, 0.615), 0)
        k.line([(0.22, 0.51), (0.36, 0.51)], 0.014)
        for i in range(4):
            k.circle(0.58 + 0.07 * i, 0.51, 0.012)
    elif g.shape == 1:  # watch
        m.rect((0.40, 0.03, 0.60, 0.97), radius=0.03)
        m.circle(0.5, 0.5, 0.2)
        m.rect((0.69, 0.47, 0.74, 0.53))
        k.ellipse((0.33, 0.33, 0.67, 0.67), width=0.012)
        k.line([(0.5, 0.5), (0.5, 0.38)], 0.014)
        k.line([(0.5, 0.5), (0.58, 0.55)], 0.014)
    else:  # necktie
        m.poly([(0.43, 0.05), (0.57, 0.05), (0.54, 0.17), (0.46, 0.17)])
        m.poly([(0.46, 0.16), (0.54, 0.16), (0.63, 0.82), (0.5, 0.95), (0.37, 0.82)])
        k.line([(0.46, 0.17), (0.54, 0.17)], 0.008)


def _hats(m, k, g):
    if g.shape == 0:  # brimmed hat
        m.d.chord([v * m.s for v in (0.27, 0.16, 0.73, 0.84)], 180, 360, fill=255)
        m.ellipse((0.06, 0.42, 0.94, 0.60))
        k.line([(0.28, 0.44), (0.72, 0.44)], 0.035)
    elif g.shape == 1:  # cap with visor
        m.d.chord([v * m.s for v in (0.14, 0.22, 0.70, 0.90)], 180, 360, fill=255)
        m.poly([(0.55, 0.50), (0.80, 0.50), (0.94, 0.58), (0.88, 0.62), (0.55, 0.60)])
        m.circle(0.42, 0.22, 0.025)
        k.arc((0.30, 0.22, 0.54, 0.90), 180, 270, 0.008)
        k.arc((0.30, 0.22, 0.54, 0.90), 270, 360, 0.008)
        k.line([(0.14, 0.555), (0.70, 0.555)], 0.01)
    else:  # beanie
        m.d.chord([v * m.s for v in (0.24, 0.20, 0.76, 0.84)], 180, 360, fill=255)
        m.rect((0.24, 0.50, 0.76, 0.60))
        m.rect((0.21, 0.58, 0.79, 0.80), radius=0.02)
        m.circle(0.5, 0.17, 0.085)
        k.line([(0.21, 0.585), (0.79, 0.585)], 0.012)
        for i in range(7):
            x = 0.27 + 0.077 * i
            k.line([(x, 0.62), (x, 0.77)], 0.006)


def _sunglasses(m, k, g):
    boxes = [(0.08, 0.37, 0.45, 0.63)]
    for box in boxes + [(1 - boxes[0][2], boxes[0][1], 1 - boxes[0][0], boxes[0][3])]:
        x0, y0, x1, y1 = box
        if g.shape == 0:  # round
            m.ellipse(box)
            k.ellipse(box, width=0.02)
        elif g.shape == 1:  # rectangular
            m.rect((x0, y0 + 0.02, x1, y1 - 0.02), radius=0.05)
            k.rect((x0, y0 + 0.02, x1, y1 - 0.02), radius=0.05, width=0.03)
        else:  # aviator teardrop
            m.ellipse((x0, y0 - 0.02, x1, y1 + 0.08))
            m.rect((x0, y0 - 0.02, x1, y0 + 0.1), 0)
            m.rect((x0, y0 + 0.01, x1, y0 + 0.12), radius=0.02)
            k.line([(x0, y0 + 0.01), (x1, y0 + 0.01)], 0.018)
    m.arc((0.43, 0.40, 0.57, 0.54), 190, 350, 0.03)
    _both(m.poly, [(0.02, 0.34), (0.09, 0.40), (0.085, 0.43), (0.015, 0.37)])


def _fringe(m, x0, x1, y, n, length=0.06):
    for i in range(n):
        x = x0 + (x1 - x0) * (i + 0.5) / n
        m.line([(x, y - 0.01), (x, y + length)], 0.01)


def _scarves(m, k, g):
    if g.shape == 0:  # loop with two hanging tails
        m.ellipse((0.28, 0.05, 0.72, 0.38), width=0.09)
        m.poly([(0.30, 0.24), (0.45, 0.28), (0.47, 0.84), (0.31, 0.86)])
        m.poly([(0.53, 0.28), (0.69, 0.24), (0.71, 0.72), (0.55, 0.70)])
        _fringe(m, 0.31, 0.47, 0.855, 6)
        _fringe(m, 0.55, 0.71, 0.71, 6)
        k.line([(0.45, 0.28), (0.53, 0.28)], 0.01)
    elif g.shape == 1:  # long folded band
        m.poly([(0.33, 0.05), (0.67, 0.05), (0.67, 0.86), (0.33, 0.86)])
        _fringe(m, 0.33, 0.67, 0.86, 10)
        k.line([(0.33, 0.05), (0.67, 0.30)], 0.01)
    else:  # triangular shawl
        m.poly([(0.05, 0.18), (0.95, 0.18), (0.5, 0.80)])
        for i in range(1, 12):
            t = i / 12
            for x, y in ((0.05 + 0.45 * t, 0.18 + 0.62 * t), (0.95 - 0.45 * t, 0.18 + 0.62 * t)):
                m.line([(x, y - 0.01), (x, y + 0.06)], 0.01)


_SHAPES = {
    "tops": _tops, "bottoms": _bottoms, "shoes": _shoes, "bags": _bags, "jewellery": _jewellery,
    "accessories": _accessories, "hats": _hats, "sunglasses": _sunglasses, "scarves": _scarves,
    "outerwear": _outerwear, "all-body": _all_body,
}
