"""Silhouettes of the sample garments, drawn in unit coordinates: the semantic categories, a
small pen over ImageDraw, and one drawing function per semantic category (``SHAPES``). The
attribute vocabularies (NECKS, SLEEVES, PATTERNS) are the DeepFashion release's, from
``etl.deepfashion``. ``draw.py`` fills them with colour and pattern; see its docstring for what each
category, shape, sleeve and neck looks like.
"""

from __future__ import annotations

import math

from PIL import Image, ImageDraw

from etl.deepfashion import NECKS  # the release's vocabulary: what the neck codes mean

SEMANTIC_CATEGORIES: tuple[str, ...] = (
    "tops", "bottoms", "shoes", "bags", "jewellery", "accessories",
    "hats", "sunglasses", "scarves", "outerwear", "all-body",
)
N_SHAPES = 3


# ---------------------------------------------------------------- drawing helpers
class Pen:
    """ImageDraw in unit coordinates (0..1 across the canvas); widths are fractions too."""

    def __init__(self, im: Image.Image, s: float):
        self.d, self.s = ImageDraw.Draw(im), s

    def _b(self, box):
        return [v * self.s for v in box]

    def _w(self, w):
        return max(1, round(w * self.s))

    def _kw(self, fill, width):  # filled shape, or just its outline when ``width`` is given
        return {"fill": fill} if width is None else {"outline": fill, "width": self._w(width)}

    def poly(self, pts, fill=255):
        self.d.polygon([(x * self.s, y * self.s) for x, y in pts], fill=fill)

    def ellipse(self, box, fill=255, width=None):
        self.d.ellipse(self._b(box), **self._kw(fill, width))

    def rect(self, box, fill=255, radius=0.0, width=None):
        self.d.rounded_rectangle(self._b(box), radius=radius * self.s, **self._kw(fill, width))

    def circle(self, cx, cy, r, fill=255):
        self.ellipse((cx - r, cy - r, cx + r, cy + r), fill)

    def line(self, pts, w=0.012, fill=255):
        self.d.line([(x * self.s, y * self.s) for x, y in pts], fill=fill, width=self._w(w), joint="curve")

    def arc(self, box, start, end, w=0.03, fill=255):
        self.d.arc(self._b(box), start, end, fill=fill, width=self._w(w))

    def dome(self, box, fill=255):  # upper half of an ellipse
        self.d.chord(self._b(box), 180, 360, fill=fill)


class Recorder:
    """Collects detail strokes so render() can draw them after the fill; unused by silhouette()."""

    def __init__(self):
        self.ops = []

    def __getattr__(self, name):
        return lambda *a, **kw: self.ops.append((name, a, kw))

    def replay(self, pen: Pen) -> None:
        for name, a, kw in self.ops:
            getattr(pen, name)(*a, **kw)


def _both(fn, pts):
    """Draw ``pts`` and its mirror image about the vertical centre line."""
    fn(pts)
    fn([(1 - x, y) for x, y in pts])


# ---------------------------------------------------------------- garments with sleeves and necks
_SLEEVE_GEOM = {1: (0.16, 52, 0.15), 2: (0.30, 35, 0.12), 3: (0.44, 24, 0.11)}  # length, degrees, cuff


def _sleeves(m, g, a, b, scale=1.0):
    """Left sleeve from shoulder ``a`` / armpit ``b`` outwards and down, plus its mirror."""
    if g.sleeve == 0:
        return
    length, deg, cuff = _SLEEVE_GEOM[g.sleeve]
    t = math.radians(deg)
    ox, oy = a[0] - math.sin(t) * length * scale, a[1] + math.cos(t) * length * scale
    _both(m.poly, [a, (ox, oy), (ox + math.cos(t) * cuff * scale, oy + math.sin(t) * cuff * scale), b])


def _neck(m, k, g, ny, hw=0.09):
    """Neckline centred at (0.5, ny): cut out of the mask (fill 0) or added to it."""
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
    else:  # scoop
        m.ellipse((c - 1.45 * hw, ny - 0.15, c + 1.45 * hw, ny + 0.15), 0)


def _upper(m, g, ny, sh, ay, hem, hem_hw, scale=1.0):
    """Torso from the neck line ``ny`` to ``hem``; shoulders at 0.5 +- ``sh``, armpits at ``ay``."""
    a, b = (0.5 - sh, ny + 0.04), (0.5 - sh + 0.01, ay)
    m.poly([a, (0.41, ny), (0.59, ny), (1 - a[0], a[1]), (1 - b[0], ay),
            (0.5 + hem_hw, hem), (0.5 - hem_hw, hem), b])
    _sleeves(m, g, a, b, scale)


def _tops(m, k, g):
    hem, hem_hw = ((0.78, 0.18), (0.60, 0.17), (0.88, 0.25))[g.shape]  # regular / cropped / tunic
    _upper(m, g, 0.19, 0.20, 0.40, hem, hem_hw)
    _neck(m, k, g, 0.19)
    k.line([(0.5 - hem_hw, hem - 0.03), (0.5 + hem_hw, hem - 0.03)], 0.006)


def _outerwear(m, k, g):
    ny, (hem, hem_hw) = 0.13, ((0.93, 0.235), (0.72, 0.22), (0.93, 0.28))[g.shape]  # coat / jacket / trench
    _upper(m, g, ny, 0.22, 0.35, hem, hem_hw, 1.1)
    _neck(m, k, g, ny)
    k.line([(0.5, ny + 0.1), (0.5, hem)], 0.012)
    _both(k.line, [(0.41, ny + 0.005), (0.46, ny + 0.2), (0.5, ny + 0.26)])
    for i in range(4 if g.shape != 1 else 3):
        k.circle(0.535, ny + 0.30 + (0.13 if g.shape != 1 else 0.1) * i, 0.014)
    _both(k.line, [(0.32, hem - 0.16), (0.43, hem - 0.16)])
    if g.shape == 2:
        k.line([(0.27, 0.50), (0.73, 0.50)], 0.035)


def _all_body(m, k, g):
    ny, waist = 0.10, 0.44
    if g.shape == 1:  # jumpsuit
        m.poly([(0.39, waist), (0.61, waist), (0.67, 0.95), (0.52, 0.95), (0.5, 0.62), (0.48, 0.95), (0.33, 0.95)])
    else:  # flared dress / mini dress
        hem, hw = (0.93, 0.35) if g.shape == 0 else (0.72, 0.27)
        m.poly([(0.40, waist), (0.60, waist), (0.5 + hw, hem), (0.5, hem + 0.03), (0.5 - hw, hem)])
    m.poly([(0.35, ny + 0.04), (0.41, ny), (0.59, ny), (0.65, ny + 0.04), (0.64, 0.27),
            (0.60, waist + 0.01), (0.40, waist + 0.01), (0.36, 0.27)])
    _sleeves(m, g, (0.35, ny + 0.04), (0.36, 0.27), 0.85)
    _neck(m, k, g, ny, 0.08)
    k.line([(0.39, waist), (0.61, waist)], 0.012)


# ---------------------------------------------------------------- the other categories
def _bottoms(m, k, g):
    if g.shape == 0:  # trousers
        m.poly([(0.31, 0.07), (0.69, 0.07), (0.75, 0.94), (0.545, 0.94), (0.5, 0.34), (0.455, 0.94), (0.25, 0.94)])
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
            k.line([(0.44 + 0.06 * i, 0.56 + 0.012 * i), (0.49 + 0.06 * i, 0.63 + 0.012 * i)], 0.01)
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
        k.line([(0.5, 0.38), (0.5, 0.5), (0.58, 0.55)], 0.014)
    else:  # necktie
        m.poly([(0.43, 0.05), (0.57, 0.05), (0.54, 0.17), (0.46, 0.17)])
        m.poly([(0.46, 0.16), (0.54, 0.16), (0.63, 0.82), (0.5, 0.95), (0.37, 0.82)])
        k.line([(0.46, 0.17), (0.54, 0.17)], 0.008)


def _hats(m, k, g):
    if g.shape == 0:  # brimmed hat
        m.dome((0.27, 0.16, 0.73, 0.84))
        m.ellipse((0.06, 0.42, 0.94, 0.60))
        k.line([(0.28, 0.44), (0.72, 0.44)], 0.035)
    elif g.shape == 1:  # cap with visor
        m.dome((0.14, 0.22, 0.70, 0.90))
        m.poly([(0.55, 0.50), (0.80, 0.50), (0.94, 0.58), (0.88, 0.62), (0.55, 0.60)])
        m.circle(0.42, 0.22, 0.025)
        k.arc((0.30, 0.22, 0.54, 0.90), 180, 270, 0.008)
        k.arc((0.30, 0.22, 0.54, 0.90), 270, 360, 0.008)
        k.line([(0.14, 0.555), (0.70, 0.555)], 0.01)
    else:  # beanie
        m.dome((0.24, 0.20, 0.76, 0.84))
        m.rect((0.24, 0.50, 0.76, 0.60))
        m.rect((0.21, 0.58, 0.79, 0.80), radius=0.02)
        m.circle(0.5, 0.17, 0.085)
        k.line([(0.21, 0.585), (0.79, 0.585)], 0.012)
        for i in range(7):
            k.line([(0.27 + 0.077 * i, 0.62), (0.27 + 0.077 * i, 0.77)], 0.006)


def _sunglasses(m, k, g):
    for x0, x1 in ((0.08, 0.45), (0.55, 0.92)):
        y0, y1 = 0.37, 0.63
        if g.shape == 0:  # round
            m.ellipse((x0, y0, x1, y1))
            k.ellipse((x0, y0, x1, y1), width=0.02)
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


def _fringe(m, ends):
    """Short tassel lines hanging from each (x, y) in ``ends``."""
    for x, y in ends:
        m.line([(x, y - 0.01), (x, y + 0.06)], 0.01)


def _scarves(m, k, g):
    if g.shape == 0:  # loop with two hanging tails
        m.ellipse((0.28, 0.05, 0.72, 0.38), width=0.09)
        m.poly([(0.30, 0.24), (0.45, 0.28), (0.47, 0.84), (0.31, 0.86)])
        m.poly([(0.53, 0.28), (0.69, 0.24), (0.71, 0.72), (0.55, 0.70)])
        _fringe(m, [(0.323 + 0.027 * i, 0.855) for i in range(6)] + [(0.563 + 0.027 * i, 0.71) for i in range(6)])
        k.line([(0.45, 0.28), (0.53, 0.28)], 0.01)
    elif g.shape == 1:  # long folded band
        m.poly([(0.33, 0.05), (0.67, 0.05), (0.67, 0.86), (0.33, 0.86)])
        _fringe(m, [(0.347 + 0.034 * i, 0.86) for i in range(10)])
        k.line([(0.33, 0.05), (0.67, 0.30)], 0.01)
    else:  # triangular shawl
        m.poly([(0.05, 0.18), (0.95, 0.18), (0.5, 0.80)])
        _fringe(m, [(0.5 + sx * (0.45 - 0.0375 * i), 0.18 + 0.0517 * i) for i in range(1, 12) for sx in (-1, 1)])


SHAPES = {
    "tops": _tops, "bottoms": _bottoms, "shoes": _shoes, "bags": _bags, "jewellery": _jewellery,
    "accessories": _accessories, "hats": _hats, "sunglasses": _sunglasses, "scarves": _scarves,
    "outerwear": _outerwear, "all-body": _all_body,
}
