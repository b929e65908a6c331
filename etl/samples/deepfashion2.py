"""A small DeepFashion2 release with Simplicity sewing-pattern sketches, drawn procedurally.

Writes ``{train,validation}/{image,annos}/NNNNNN.{jpg,json}`` (numbered from 000001 in each
split) and ``simplicity/patterns/<pattern_id>.json`` + ``simplicity/images/`` (layout: see
``etl/deepfashion2.py``). ~120*scale train and ~60*scale validation images, 50*scale Simplicity patterns.

Hidden ground truth:
- Categories map to draw.py garments: short/long sleeve top -> tops with short/long sleeves;
  vest -> sleeveless top; sling -> sleeveless cropped top with a v/scoop neck; short/long
  sleeve outwear -> outerwear with short/long sleeves; shorts / trousers / skirt -> bottoms
  shape 2 / 0 / 1; short/long sleeve dress -> all-body (flared or mini) with short/long sleeves;
  vest dress -> sleeveless flared dress; sling dress -> sleeveless mini dress with a v/scoop neck.
- Each pair_id is one product group, all in one split: shop images (``draw.render`` on white,
  centred, viewpoint 1) and user images (the same ``Garment`` smaller, shifted, sometimes cut by
  the frame, on a cluttered background, under a mild colour cast, sometimes partly hidden by
  a disc that leaves at least half of the garment visible; viewpoint 2). Items with the same
  (split, pair_id, style > 0) are the same Garment object. Groups are: one garment (style 1) in 1-2 shop and 1-3 user images, where user images
  may add a second, unrelated garment with style 0; an outfit (top style 1 + bottom style 2)
  in one shop and 1-2 user images; or user images only, whose garment has style 0.
- Annotations are geometrically true: the bounding box is the visible garment pixels' box (x2,
  y2 exclusive), segmentation the outer contour of each visible connected part (pixel-edge
  coordinates, simplified by <= 0.7 px), landmarks DeepFashion2's count per category placed
  evenly along the whole garment's outline from its top-left point (v = 2 visible, 1 hidden by
  an occluder or another garment, 0 with x = y = 0 outside the frame); scale, occlusion and
  zoom_in are computed from the visible, hidden and out-of-frame pixel fractions.
- Simplicity: each pattern is one structure (category, shape, sleeve, neck). Its line drawing
  is the black outline of that structure's silhouette on white (PNG); its 1-3 photos are that
  structure made up in other colours and patterns (JPEG). Same pattern => same structure.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
from contourpy import contour_generator
from PIL import Image, ImageDraw
from scipy import ndimage

from etl.deepfashion2 import CATEGORIES
from etl.samples.draw import Garment, render, silhouette

# category_id -> (semantic category, sleeve, shapes allowed, necks allowed or None for any)
GARMENTS = {
    1: ("tops", 1, (0, 1, 2), None), 2: ("tops", 3, (0, 1, 2), None), 3: ("outerwear", 1, (0, 1, 2), None),
    4: ("outerwear", 3, (0, 1, 2), None), 5: ("tops", 0, (0, 2), (0, 2, 3)), 6: ("tops", 0, (1,), (1, 6)),
    7: ("bottoms", 0, (2,), (0,)), 8: ("bottoms", 0, (0,), (0,)), 9: ("bottoms", 0, (1,), (0,)),
    10: ("all-body", 1, (0, 2), None), 11: ("all-body", 3, (0, 2), None), 12: ("all-body", 0, (0,), (0, 2, 3)),
    13: ("all-body", 0, (2,), (1, 6)),
}  # fmt: skip
N_LANDMARKS = {1: 25, 2: 33, 3: 31, 4: 39, 5: 15, 6: 15, 7: 10, 8: 14, 9: 8, 10: 29, 11: 37, 12: 19, 13: 19}
UPPER, LOWER = (1, 2, 3, 4, 5, 6), (7, 8, 9)
SPLIT_IMAGES = {"train": 120, "validation": 60}


def make_garment(rng: random.Random, category_id: int) -> Garment:
    sem, sleeve, shapes, necks = GARMENTS[category_id]
    return Garment(sem, tuple(rng.randrange(30, 230) for _ in range(3)), tuple(rng.randrange(0, 220) for _ in range(3)),
                   rng.randrange(10), sleeve, rng.choice(necks or range(7)), rng.choice(shapes))  # fmt: skip


def _rdp(pts: np.ndarray, eps: float) -> np.ndarray:
    """Douglas-Peucker simplification of an open polyline (keeps both ends)."""
    keep = np.zeros(len(pts), bool)
    keep[[0, -1]] = True
    stack = [(0, len(pts) - 1)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        d = pts[b] - pts[a]
        seg = pts[a + 1: b] - pts[a]
        dist = np.abs(d[0] * seg[:, 1] - d[1] * seg[:, 0]) / max(np.hypot(*d), 1e-9)
        k = int(np.argmax(dist))
        if dist[k] > eps:
            keep[a + 1 + k] = True
            stack += [(a, a + 1 + k), (a + 1 + k, b)]
    return pts[keep]


def outline(mask: np.ndarray) -> np.ndarray:
    """Outer contour (pixel-edge coordinates, no repeated end point) of a filled component."""
    lines = contour_generator(z=np.pad(mask, 1).astype(np.float32), line_type="Separate").lines(0.5)
    line = max(lines, key=len)[:-1] - 0.5  # unpad (-1), pixel centres -> edges (+0.5)
    start = int(np.lexsort((line[:, 0], line[:, 1]))[0])  # top-most, then left-most point
    return np.roll(line, -start, axis=0)


def polygons(mask: np.ndarray, min_area: int = 6) -> list[list[float]]:
    """One simplified polygon per connected part of ``mask`` (parts under ``min_area`` pixels
    dropped unless it is the largest), flat [x1, y1, x2, y2, ...]."""
    labels, n = ndimage.label(mask)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    out = []
    for k in range(1, n + 1):
        part = ndimage.binary_fill_holes(labels == k)
        if sizes[k - 1] < min_area and sizes[k - 1] < sizes.max():  # specks, but never every part
            continue
        ring = outline(part)
        far = int(np.argmax(np.hypot(*(ring - ring[0]).T)))
        pts = np.concatenate([_rdp(ring[: far + 1], 0.7)[:-1], _rdp(np.vstack([ring[far:], ring[:1]]), 0.7)[:-1]])
        out.append([round(float(v), 2) for v in pts.ravel()])
    return out


def outline_points(full: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points (xs, ys) evenly along the outline of the whole garment's largest part."""
    labels, _ = ndimage.label(full)
    biggest = np.argmax(np.bincount(labels.ravel())[1:]) + 1
    ring = outline(ndimage.binary_fill_holes(labels == biggest))
    closed = np.vstack([ring, ring[:1]])
    arc = np.concatenate([[0], np.cumsum(np.hypot(*np.diff(closed, axis=0).T))])
    at = np.arange(n) * arc[-1] / n
    xs, ys = np.interp(at, arc, closed[:, 0]), np.interp(at, arc, closed[:, 1])
    return xs, ys


class _Scene:
    """A picture being composed: garments pasted in order, each with its full mask on a padded
    canvas (so parts outside the frame are known) and what of it stays visible."""

    def __init__(self, size: int, background: Image.Image):
        self.size, self.pad = size, size
        self.image = background
        self.layers: list[tuple[Garment, int, np.ndarray]] = []  # garment, category_id, full mask (padded)
        self.cover = np.zeros((3 * size, 3 * size), bool)

    def add(self, g: Garment, category_id: int, gs: int, ox: int, oy: int) -> None:
        sil = silhouette(g, gs)
        self.image.paste(render(g, gs), (ox, oy), sil)
        full = np.zeros_like(self.cover)
        p = self.pad
        full[p + oy: p + oy + gs, p + ox: p + ox + gs] = np.asarray(sil) > 0
        self.layers.append((g, category_id, full))

    def occlude(self, rng: random.Random) -> None:
        """A plain 'bag' disc over part of the last garment (shrunk until half of it shows)."""
        s = self.size
        target = self.layers[-1][2][s: 2 * s, s: 2 * s]
        ys, xs = np.nonzero(target)
        if not len(xs):
            return
        cx, cy, r = int(rng.choice(xs)), int(rng.choice(ys)), rng.randrange(s // 8, s // 4)
        colour = tuple(rng.randrange(20, 120) for _ in range(3))
        while True:
            occ = Image.new("L", (s, s), 0)
            ImageDraw.Draw(occ).ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
            disc = np.asarray(occ) > 0
            if (disc & target).sum() <= 0.5 * target.sum() or r <= 2:
                break
            r = r * 2 // 3
        ImageDraw.Draw(self.image).ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
        self.cover[s: 2 * s, s: 2 * s] |= disc

    def annotations(self, styles: list[int], shop: bool) -> list[dict]:
        s, items = self.size, []
        frame = np.zeros_like(self.cover)
        frame[s: 2 * s, s: 2 * s] = True
        for i, ((_, cid, full), style) in enumerate(zip(self.layers, styles)):
            hidden = self.cover.copy()
            for _, _, later in self.layers[i + 1:]:
                hidden |= later
            visible = full & frame & ~hidden
            in_frame = full & frame
            vis = visible[s: 2 * s, s: 2 * s]
            ys, xs = np.nonzero(vis)
            if not len(xs):
                continue  # nothing of it shows (placements keep this from happening)
            coords = []
            for x, y in zip(*outline_points(full, N_LANDMARKS[cid])):
                px, py = int(np.clip(np.floor(x), 0, 3 * s - 1)), int(np.clip(np.floor(y), 0, 3 * s - 1))
                inside = s <= x < 2 * s and s <= y < 2 * s
                v = 0 if not inside else (2 if visible[max(py - 1, 0): py + 2, max(px - 1, 0): px + 2].any() else 1)
                coords += [round(float(x - s), 1), round(float(y - s), 1), v] if v else [0, 0, 0]
            frac_hidden = 1 - vis.sum() / max(in_frame.sum(), 1)
            frac_out = 1 - in_frame.sum() / max(full.sum(), 1)
            items.append({
                "segmentation": polygons(vis), "scale": 1 if vis.mean() < 0.08 else 2 if vis.mean() < 0.3 else 3,
                "viewpoint": 1 if shop else 2, "zoom_in": 1 if frac_out == 0 else 2 if frac_out < 0.25 else 3,
                "landmarks": coords, "style": style,
                "bounding_box": [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1],
                "category_id": cid, "occlusion": 1 if frac_hidden < 0.1 else 2 if frac_hidden < 0.35 else 3,
                "category_name": CATEGORIES[cid],
            })  # fmt: skip
        return items


def _background(rng: random.Random, size: int) -> Image.Image:
    """Cluttered 'street' background: a light base colour under a few muted blocks and discs."""
    im = Image.new("RGB", (size, size), tuple(rng.randrange(150, 235) for _ in range(3)))
    d = ImageDraw.Draw(im)
    for _ in range(6):
        x, y, w, h = (rng.randrange(size) for _ in range(4))
        box = (x - w // 2, y - h // 2, x + w // 2, y + h // 2)
        fill = tuple(rng.randrange(90, 210) for _ in range(3))
        (d.rectangle if rng.random() < 0.5 else d.ellipse)(box, fill=fill)
    return im


def _cast(im: Image.Image, rng: random.Random) -> Image.Image:
    """A mild colour cast over the whole photo (lighting): each channel times 0.9-1.1."""
    a = np.asarray(im, np.float32) * np.float32([rng.uniform(0.9, 1.1) for _ in range(3)])
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")


def shop_image(garments: list[tuple[Garment, int]], size: int) -> tuple[Image.Image, list[dict]]:
    """Product shot on white: one garment centred at full size, or an outfit (top above bottom)."""
    scene = _Scene(size, Image.new("RGB", (size, size), (255, 255, 255)))
    if len(garments) == 1:
        scene.add(*garments[0], size, 0, 0)
    else:
        half = size * 11 // 20
        scene.add(*garments[0], half, (size - half) // 2, 0)
        scene.add(*garments[1], half, (size - half) // 2, size - half)
    return scene.image, scene.annotations([1, 2][: len(garments)], shop=True)


def user_image(garments: list[tuple[Garment, int]], styles: list[int], size: int,
               rng: random.Random) -> tuple[Image.Image, list[dict]]:  # fmt: skip
    """Consumer photo: the garments smaller and shifted on clutter, maybe cut by the frame or
    partly hidden, under a colour cast."""
    scene = _Scene(size, _background(rng, size))
    if len(garments) == 1:
        gs = int(size * rng.uniform(0.6, 0.9))
        ox = rng.randrange(-gs // 8, size - gs + gs // 8 + 1) if rng.random() < 0.3 else rng.randrange(0, size - gs + 1)
        scene.add(*garments[0], gs, ox, rng.randrange(0, size - gs + 1))
    else:
        gs = int(size * rng.uniform(0.48, 0.56))
        x = rng.randrange(0, size - gs + 1)
        scene.add(*garments[0], gs, x, rng.randrange(0, size // 10))
        scene.add(*garments[1], gs, min(max(0, x + rng.randrange(-size // 10, size // 10)), size - gs),
                  size - gs - rng.randrange(0, size // 10))  # fmt: skip
    if rng.random() < 0.35:
        scene.occlude(rng)
    image = _cast(scene.image, rng)
    return image, scene.annotations(styles, shop=False)


def _groups(rng: random.Random, target: int):
    """Product groups until ``target`` images: lists of (source, [(garment, category_id)], styles)."""
    n = 0
    while n < target:
        kind = rng.random()
        cid = rng.choice(list(GARMENTS))
        g = (make_garment(rng, cid), cid)
        if kind < 0.6:  # one garment, shop + user; user photos may add an unrelated garment (style 0)
            shots = [("shop", [g], [1])] * rng.randint(1, 2)
            for _ in range(rng.randint(1, 3)):
                other = rng.choice(LOWER if cid in UPPER else UPPER) if cid not in (10, 11, 12, 13) else None
                if other and rng.random() < 0.4:
                    o = (make_garment(rng, other), other)
                    shots.append(("user", [g, o] if cid in UPPER else [o, g], [1, 0] if cid in UPPER else [0, 1]))
                else:
                    shots.append(("user", [g], [1]))
        elif kind < 0.8:  # an outfit: top (style 1) over bottom (style 2), shop + user
            top, bottom = rng.choice(UPPER), rng.choice(LOWER)
            outfit = [(make_garment(rng, top), top), (make_garment(rng, bottom), bottom)]
            shots = [("shop", outfit, [1, 2])] + [("user", outfit, [1, 2])] * rng.randint(1, 2)
        else:  # user photos only: no shop counterpart, style 0
            shots = [("user", [g], [0])] * rng.randint(1, 2)
        n += len(shots)
        yield shots


def write_deepfashion2(out: Path | str, seed: int = 0, scale: int = 1, image_size: int = 128,
                       on_item: Callable[[], None] | None = None) -> dict[str, int]:  # fmt: skip
    """Write the release to ``out`` (created). Returns counts of what was written."""
    if scale < 1 or image_size < 40:
        raise ValueError(f"scale must be >= 1 and image_size >= 40 (garments are drawn at ~0.4x), got {scale}, {image_size}")
    out, rng = Path(out), random.Random(seed + 2)
    counts = {"train_images": 0, "validation_images": 0, "items": 0, "positive_groups": 0, "patterns": 0,
              "pattern_photos": 0}  # fmt: skip
    for split, per_scale in SPLIT_IMAGES.items():
        (out / split / "image").mkdir(parents=True, exist_ok=True)
        (out / split / "annos").mkdir(parents=True, exist_ok=True)
        n = 0
        for pair_id, shots in enumerate(_groups(rng, per_scale * scale), 1):
            counts["positive_groups"] += len({st for src, _, styles in shots if src == "shop" for st in styles if st})
            for source, garments, styles in shots:
                n += 1
                if source == "shop":
                    image, items = shop_image(garments, image_size)
                else:
                    image, items = user_image(garments, styles, image_size, rng)
                image.save(out / split / "image" / f"{n:06d}.jpg", quality=90)
                doc = {"source": source, "pair_id": pair_id, **{f"item{k}": it for k, it in enumerate(items, 1)}}
                (out / split / "annos" / f"{n:06d}.json").write_text(json.dumps(doc))
                counts["items"] += len(items)
                if on_item:
                    on_item()
        counts[f"{split}_images"] = n
    counts["patterns"], counts["pattern_photos"] = _write_simplicity(out / "simplicity", rng, 50 * scale, image_size, on_item)
    return counts


def line_drawing(g: Garment, size: int) -> Image.Image:
    """Black outline (~2 px) of the garment's silhouette on white, mode 'L'."""
    mask = np.asarray(silhouette(g, size)) > 0
    edge = mask & ~ndimage.binary_erosion(mask, iterations=2)
    return Image.fromarray(np.where(edge, 0, 255).astype(np.uint8), "L")


def _write_simplicity(out: Path, rng: random.Random, n: int, size: int, on_item) -> tuple[int, int]:
    (out / "patterns").mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(parents=True, exist_ok=True)
    photos = 0
    for i in range(n):
        pattern_id = str(8001 + i)
        cid = rng.choice(list(GARMENTS))
        structure = make_garment(rng, cid)
        line_drawing(structure, size).save(out / "images" / f"{pattern_id}_line.png")
        names = []
        for k in range(1, rng.randint(1, 3) + 1):  # same structure, other fabric
            made = make_garment(rng, cid)
            made = Garment(structure.category, made.colour, made.accent, made.pattern, structure.sleeve,
                           structure.neck, structure.shape)  # fmt: skip
            scene = _Scene(size, Image.new("RGB", (size, size), tuple(rng.randrange(200, 256) for _ in range(3))))
            gs = int(size * rng.uniform(0.8, 1.0))
            scene.add(made, cid, gs, rng.randrange(0, size - gs + 1), rng.randrange(0, size - gs + 1))
            names.append(f"images/{pattern_id}_{k}.jpg")
            scene.image.save(out / names[-1], quality=90)
            photos += 1
            if on_item:
                on_item()
        doc = {"line_image": f"images/{pattern_id}_line.png", "other_images": names}
        (out / "patterns" / f"{pattern_id}.json").write_text(json.dumps(doc))
    return n, photos
