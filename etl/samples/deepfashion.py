"""A small DeepFashion attributes release: the research `attributes.csv` and the official
Category-and-Attribute benchmark lists, over procedurally drawn garment images.

Ground truth: each image is a top, a piece of outerwear or a dress drawn with its true neck
(0-6, NECKS), sleeve length (0-3, SLEEVES) and pattern (0-9, PATTERNS); classes are drawn with
skewed frequencies (so the majority class is a real baseline to beat) and colours at random
(colour carries no label information). In the CSV, each attribute is written `#N/A` for ~5% of
rows (the image still shows it: the label is missing, not the attribute), and one filename is
written twice with conflicting values, as in the research release.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from etl.common import stable_split
from etl.samples.draw import NECKS, PATTERNS, SLEEVES, Garment, render

NECK_WEIGHTS = (30, 25, 10, 10, 10, 10, 5)
SLEEVE_WEIGHTS = (20, 35, 15, 30)
PATTERN_WEIGHTS = (30, 12, 8, 10, 8, 8, 6, 6, 6, 6)
# benchmark categories: (name, type 1 upper / 2 lower / 3 full, semantic category for drawing)
BENCHMARK_CATEGORIES = (("Tee", 1, "tops"), ("Blouse", 1, "tops"), ("Jacket", 1, "outerwear"), ("Dress", 3, "all-body"))
# benchmark attributes: (name, type 1 texture / 4 part, test on the garment)
BENCHMARK_ATTRIBUTES = (
    *((PATTERNS[p].replace("-", " "), 1, ("pattern", p)) for p in range(len(PATTERNS))),
    *((f"{SLEEVES[s]} sleeve", 4, ("sleeve", s)) for s in range(len(SLEEVES))),
    *((f"{NECKS[n]} neckline", 4, ("neck", n)) for n in range(len(NECKS))),
)
MISSING_RATE = 0.05


def write_deepfashion(out: Path | str, seed: int = 0, scale: int = 1, image_size: int = 128,
                      on_item: Callable[[], None] | None = None) -> dict[str, int]:  # fmt: skip
    """Write the release to ``out`` (created). Returns counts of what was written."""
    out = Path(out)
    rng = random.Random(seed + 1)
    n = 400 * scale
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows, garments = [], []
    for i in range(n):
        cat_index = rng.randrange(len(BENCHMARK_CATEGORIES))
        g = Garment(
            BENCHMARK_CATEGORIES[cat_index][2],
            tuple(rng.randrange(30, 230) for _ in range(3)),
            tuple(rng.randrange(0, 256) for _ in range(3)),
            rng.choices(range(len(PATTERNS)), PATTERN_WEIGHTS)[0],
            rng.choices(range(len(SLEEVES)), SLEEVE_WEIGHTS)[0],
            rng.choices(range(len(NECKS)), NECK_WEIGHTS)[0],
            rng.randrange(3),
        )
        filename = f"{i:06d}.jpg"
        render(g, image_size).save(out / "images" / filename, quality=90)
        if on_item:
            on_item()
        garments.append((filename, cat_index, g))
        codes = [g.neck, g.sleeve, g.pattern]
        rows.append([filename, *("#N/A" if rng.random() < MISSING_RATE else str(c) for c in codes)])
    dup = rows[n // 3]
    rows.insert(2 * n // 3, [dup[0], str((garments[n // 3][2].neck + 1) % len(NECKS)), dup[2], dup[3]])
    (out / "attributes.csv").write_text("filename,neck,sleeve_length,pattern\n" + "".join(",".join(r) + "\n" for r in rows))
    _write_benchmark(out, garments, seed)
    return {"images": n, "csv_rows": len(rows)}


def _lines(header: str, body: list[str]) -> str:
    return f"{len(body)}\n{header}\n" + "".join(line + "\n" for line in body)


def _write_benchmark(out: Path, garments: list[tuple[str, int, Garment]], seed: int) -> None:
    (out / "Anno").mkdir(exist_ok=True)
    (out / "Eval").mkdir(exist_ok=True)
    names = [f"images/{f}" for f, _, _ in garments]
    (out / "Anno/list_attr_cloth.txt").write_text(
        _lines("attribute_name  attribute_type", [f"{name:<30}{t}" for name, t, _ in BENCHMARK_ATTRIBUTES]))
    (out / "Anno/list_category_cloth.txt").write_text(
        _lines("category_name  category_type", [f"{name:<20}{t}" for name, t, _ in BENCHMARK_CATEGORIES]))
    attr_lines = []
    for name, (_, _, g) in zip(names, garments):
        values = ["1" if getattr(g, field) == v else "-1" for _, _, (field, v) in BENCHMARK_ATTRIBUTES]
        attr_lines.append(f"{name:<40}" + " ".join(values))
    (out / "Anno/list_attr_img.txt").write_text(_lines("image_name  attribute_labels", attr_lines))
    (out / "Anno/list_category_img.txt").write_text(
        _lines("image_name  category_label", [f"{name:<40}{c + 1}" for name, (_, c, _) in zip(names, garments)]))
    (out / "Eval/list_eval_partition.txt").write_text(
        _lines("image_name  evaluation_status", [f"{name:<40}{stable_split(name, seed)}" for name in names]))
