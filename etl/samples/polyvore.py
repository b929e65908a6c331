"""A small, valid Polyvore Outfits release, drawn procedurally, with hidden style rules.

Ground truth (what later models are scored against):

1. Every item belongs to one of four hidden STYLES. A style fixes a palette (the item's main and
   accent colours are drawn from it), a set of patterns, and preferences for sleeve length and
   neckline (tops, outerwear, all-body). Style names never appear in any file.
2. An outfit takes all its items from ONE style. Its core is `tops + bottoms + shoes` (75%) or
   `all-body + shoes` (25%), plus `accessories` (50%) and one extra drawn from the style's
   preferred extra categories.
3. Fill-in-the-blank: the right answer is the left-out item; the three other candidates have the
   same semantic category and come from other outfits of the split: one of the SAME style, two of
   OTHER styles, four different items (no item twice in a question), each drawn by occurrence (an
   item as often as it is in outfits, like the answers, so popularity tells nothing; drawn
   uniformly by item, a same-style distractor was in 0.68 times as many nondisjoint outfits as
   the answer, a cue WumBERT, which learns each item, used to beat 50%). Within a style items are
   drawn independently, so the same-style distractor is as good a fit as the answer: chance is
   25%, a scorer that knows each item's style perfectly expects 50%, and a score well above 50%
   would mean information the rules do not give (a leak). (The real release draws distractors of
   the blank's category; with four equally common styles, random ones would share the answer's
   style 3 x 1/4 = 0.75 times per question: one of three, fixed, keeps that share and makes the
   50% ceiling exact.)
4. Compatibility: label 1 lines are real outfits; label 0 lines replace every item of an outfit
   with an item of the same category drawn from random outfits of the same split (mixed styles).
5. `disjoint`: train / valid / test outfits use disjoint item pools. `nondisjoint`: outfits of
   every split draw from all pools, so items are shared across splits.
6. Images: the semantic category decides the silhouette, the fine category (category_id) the
   shape variant; colour, pattern, sleeve length and neckline are visible.

`sample_truth(seed, scale)` gives each item's hidden style and drawn attributes (pattern, sleeve,
neckline, colour) for scoring models; it replays the generator's draws and writes nothing.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from etl.samples.draw import NECKS, PATTERNS, SEMANTIC_CATEGORIES, SLEEVES, Garment, render

SPLITS = ("train", "valid", "test")
# fine categories: semantic category -> names of its shape variants 0, 1, 2 (ids assigned in order)
FINE_CATEGORIES: dict[str, tuple[str, str, str]] = {
    "tops": ("Tops", "Shirts", "Sweaters"),
    "bottoms": ("Jeans", "Skirts", "Shorts"),
    "shoes": ("Sneakers", "Pumps", "Boots"),
    "bags": ("Tote Bags", "Clutches", "Backpacks"),
    "jewellery": ("Necklaces", "Rings", "Earrings"),
    "accessories": ("Belts", "Watches", "Hair Accessories"),
    "hats": ("Hats", "Beanies", "Caps"),
    "sunglasses": ("Sunglasses", "Aviators", "Cat-Eye Sunglasses"),
    "scarves": ("Scarves", "Shawls", "Bandanas"),
    "outerwear": ("Jackets", "Coats", "Blazers"),
    "all-body": ("Day Dresses", "Jumpsuits", "Gowns"),
}
CATEGORY_IDS = {(sem, k): 11 + 10 * i + k for i, sem in enumerate(SEMANTIC_CATEGORIES) for k in range(3)}
GARMENTS_WITH_SLEEVES = ("tops", "outerwear", "all-body")
# outfits per split and variant (times `scale`): 600 train outfits make the style rules learnable; valid and
# test are large enough that a 95% interval of FITB accuracy is about +-0.06 / +-0.045 (480 test questions)
OUTFITS_PER_SPLIT = {"train": 600, "valid": 240, "test": 480}
# FITB distractors of the answer's own style, of 3 (see rule 3 of the module docstring)
SAME_STYLE_DISTRACTORS = 1


@dataclass(frozen=True)
class Style:
    palette: dict[str, tuple[int, int, int]]  # colour name -> RGB
    patterns: tuple[int, ...]  # indices into PATTERNS
    sleeves: tuple[float, float, float, float]  # weights of SLEEVES
    necks: tuple[float, ...]  # weights of NECKS
    extras: tuple[str, ...]  # preferred extra categories


STYLES: dict[str, Style] = {
    "minimal": Style({"black": (25, 25, 25), "grey": (128, 128, 128), "navy": (30, 40, 85), "beige": (205, 185, 150)},
                     (0, 0, 2), (0.05, 0.2, 0.25, 0.5), (3, 0, 1, 3, 3, 1, 0), ("bags", "jewellery", "sunglasses")),
    "bold": Style({"red": (210, 30, 40), "yellow": (240, 200, 20), "blue": (30, 70, 200), "green": (20, 150, 60)},
                  (1, 3, 9), (0.3, 0.5, 0.1, 0.1), (3, 2, 1, 0, 0, 0, 2), ("hats", "sunglasses", "accessories")),
    "earth": Style({"brown": (115, 70, 30), "olive": (110, 120, 40), "rust": (180, 80, 30), "mustard": (195, 150, 40)},
                   (4, 7, 6), (0.05, 0.15, 0.4, 0.4), (1, 1, 0, 0, 2, 3, 0), ("scarves", "outerwear", "bags")),
    "pastel": Style({"pink": (240, 165, 190), "lavender": (185, 165, 230), "mint": (160, 225, 195), "sky": (160, 205, 240)},
                    (5, 3, 8), (0.4, 0.4, 0.1, 0.1), (2, 2, 2, 1, 0, 0, 3), ("jewellery", "hats", "bags")),
}


@dataclass
class SampleItem:
    item_id: str
    style: str
    split_pool: str
    garment: Garment
    colour_name: str

    @property
    def category(self) -> str:
        return self.garment.category


Pools = dict[str, dict[tuple[str, str], list[SampleItem]]]  # split -> (style, category) -> items


def _draw_item(rng: random.Random, item_id: str, style_name: str, category: str, pool: str) -> SampleItem:
    style = STYLES[style_name]
    names = list(style.palette)
    colour_name = rng.choice(names)
    accent = style.palette[rng.choice([n for n in names if n != colour_name])] if rng.random() < 0.8 else (250, 250, 250)
    sleeve = rng.choices(range(len(SLEEVES)), style.sleeves)[0] if category in GARMENTS_WITH_SLEEVES else 3
    neck = rng.choices(range(len(NECKS)), style.necks)[0] if category in GARMENTS_WITH_SLEEVES else 0
    g = Garment(category, style.palette[colour_name], accent, rng.choice(style.patterns), sleeve, neck, rng.randrange(3))
    return SampleItem(item_id, style_name, pool, g, colour_name)


def _title(item: SampleItem) -> str:
    g = item.garment
    fine = FINE_CATEGORIES[g.category][g.shape].lower()
    pattern = "" if PATTERNS[g.pattern] == "solid" else PATTERNS[g.pattern].replace("-", " ") + " "
    sleeve = f"{SLEEVES[g.sleeve]}-sleeve " if g.category in GARMENTS_WITH_SLEEVES else ""
    neck = f"{NECKS[g.neck]} " if g.category in GARMENTS_WITH_SLEEVES else ""
    return f"{item.colour_name} {pattern}{neck}{sleeve}{fine}"


def _metadata(item: SampleItem, rng: random.Random) -> dict:
    title = _title(item)
    g = item.garment
    description = "" if rng.random() < 0.2 else f"A {title} in {item.colour_name}. Product code {item.item_id}."
    return {
        "url_name": title.replace(" ", "-"),
        "description": description,
        "catgeories": ["Clothing" if g.category in GARMENTS_WITH_SLEEVES + ("bottoms",) else "Accessories",
                       FINE_CATEGORIES[g.category][g.shape]],  # fmt: skip
        "title": title,
        "related": [FINE_CATEGORIES[g.category][g.shape], item.colour_name],
        "category_id": str(CATEGORY_IDS[(g.category, g.shape)]),
        "semantic_category": g.category,
    }


def _outfit_categories(rng: random.Random, style: Style) -> list[str]:
    core = ["tops", "bottoms", "shoes"] if rng.random() < 0.75 else ["all-body", "shoes"]
    extras = [c for c in style.extras if c != "accessories"]
    return core + (["accessories"] if rng.random() < 0.5 else []) + [rng.choice(extras)]


def _draw_outfit(rng: random.Random, source_pools: list[dict[tuple[str, str], list[SampleItem]]],
                 seen: set[frozenset[str]]) -> tuple[str, list[SampleItem]]:  # fmt: skip
    """A style and one item of it per drawn category (each from a random pool of ``source_pools``),
    drawn again while its item set is in ``seen`` (then added)."""
    while True:
        style_name = rng.choice(list(STYLES))
        chosen = [rng.choice(rng.choice(source_pools)[(style_name, c)]) for c in _outfit_categories(rng, STYLES[style_name])]
        key = frozenset(it.item_id for it in chosen)
        if key not in seen:
            seen.add(key)
            return style_name, chosen


def _draw_items(rng: random.Random, scale: int) -> tuple[Iterator[int], Pools, list[SampleItem]]:
    """The first draws of a release: the id sequence (items, then outfit set ids), and every
    item, by split pool and (style, category). Shared by `write_polyvore` and `sample_truth`."""
    ids = iter(rng.sample(range(100_000_000, 999_999_999), 50_000 * scale))
    pools: Pools = {s: defaultdict(list) for s in SPLITS}
    items: list[SampleItem] = []
    per_pool = {"train": 6, "valid": 2, "test": 3}
    for split in SPLITS:
        for style in STYLES:
            for category in SEMANTIC_CATEGORIES:
                for _ in range(per_pool[split] * scale):
                    item = _draw_item(rng, str(next(ids)), style, category, split)
                    pools[split][(style, category)].append(item)
                    items.append(item)
    return ids, pools, items


def sample_truth(seed: int = 0, scale: int = 1) -> dict[str, dict]:
    """The hidden ground truth of the release `write_polyvore(out, seed, scale)` writes (any
    image size): item_id -> {"style", "category", "pattern" (name), "sleeve" (name, None for
    categories without sleeves), "neck" (name, None likewise), "colour" (main colour name)}.

    It replays the generator's item draws (`_draw_items`), so it is exact and writes nothing;
    none of it is in the released files except what the titles and images show."""
    _, _, items = _draw_items(random.Random(seed), scale)
    truth = {}
    for item in items:
        g = item.garment
        sleeved = g.category in GARMENTS_WITH_SLEEVES
        truth[item.item_id] = {"style": item.style, "category": g.category, "pattern": PATTERNS[g.pattern],
                               "sleeve": SLEEVES[g.sleeve] if sleeved else None,
                               "neck": NECKS[g.neck] if sleeved else None, "colour": item.colour_name}  # fmt: skip
    return truth


def write_polyvore(out: Path | str, seed: int = 0, scale: int = 1, image_size: int = 128,
                   on_item: Callable[[], None] | None = None) -> dict[str, int]:  # fmt: skip
    """Write the release to ``out`` (created). Returns counts of what was written."""
    out = Path(out)
    rng = random.Random(seed)
    ids, pools, items = _draw_items(rng, scale)
    (out / "images").mkdir(parents=True, exist_ok=True)
    for item in items:
        render(item.garment, image_size).save(out / "images" / f"{item.item_id}.jpg", quality=90)
        if on_item:
            on_item()
    meta = {item.item_id: _metadata(item, rng) for item in items}
    (out / "polyvore_item_metadata.json").write_text(json.dumps(meta))
    with open(out / "categories.csv", "w") as f:
        for (sem, k), cid in CATEGORY_IDS.items():
            f.write(f"{cid},{FINE_CATEGORIES[sem][k]},{sem}\n")
    n_outfits = {split: n * scale for split, n in OUTFITS_PER_SPLIT.items()}
    titles: dict[str, dict] = {}
    counts = {"items": len(items)}
    for variant in ("nondisjoint", "disjoint"):
        seen: set[frozenset[str]] = set()  # item sets so far: an outfit is never repeated, in any split of the variant
        for split in SPLITS:
            outfits = []
            for _ in range(n_outfits[split]):
                style_name, chosen = _draw_outfit(rng, [pools[split]] if variant == "disjoint" else list(pools.values()), seen)
                set_id = str(next(ids))
                titles[set_id] = {"url_name": f"set-{set_id}", "title": f"Untitled #{rng.randrange(1, 9999)}"}
                outfits.append((set_id, style_name, chosen))
            _write_split(out / variant, split, outfits, rng)
            counts[f"{variant}/{split}"] = len(outfits)
    (out / "polyvore_outfit_titles.json").write_text(json.dumps(titles))
    return counts


def _write_split(folder: Path, split: str, outfits: list[tuple[str, str, list[SampleItem]]], rng: random.Random) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{split}.json").write_text(json.dumps([
        {"set_id": set_id, "items": [{"item_id": it.item_id, "index": k} for k, it in enumerate(chosen, 1)]}
        for set_id, _, chosen in outfits
    ]))  # fmt: skip
    # tokens of this split by category (compatibility negatives), and by category, style and item (FITB distractors)
    by_category: dict[str, list[str]] = defaultdict(list)
    items: dict[str, dict[str, dict[str, list[str]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for set_id, style, chosen in outfits:
        for k, it in enumerate(chosen, 1):
            by_category[it.category].append(f"{set_id}_{k}")
            items[it.category][style][it.item_id].append(f"{set_id}_{k}")
    lines = []
    for set_id, _, chosen in outfits:
        lines.append("1 " + " ".join(f"{set_id}_{k}" for k in range(1, len(chosen) + 1)))
        lines.append("0 " + " ".join(rng.choice([t for t in by_category[it.category] if not t.startswith(set_id + "_")]
                                                 or by_category[it.category]) for it in chosen))  # fmt: skip
    rng.shuffle(lines)
    (folder / f"compatibility_{split}.txt").write_text("\n".join(lines) + "\n")
    questions = []
    for set_id, style, chosen in outfits:
        blank = rng.randrange(len(chosen))
        distractors = _distractors(rng, items[chosen[blank].category], style, chosen[blank].item_id)
        if distractors is None:
            continue
        answers = [f"{set_id}_{blank + 1}", *distractors]
        rng.shuffle(answers)
        question = [f"{set_id}_{k}" for k in range(1, len(chosen) + 1) if k != blank + 1]
        questions.append({"question": question, "answers": answers, "blank_position": blank + 1})
    (folder / f"fill_in_blank_{split}.json").write_text(json.dumps(questions))


def _distractors(rng: random.Random, by_style: dict[str, dict[str, list[str]]], style: str, answer: str) -> list[str] | None:
    """Three FITB distractors of the blank's category (``by_style``: style -> item_id -> its
    tokens in this split): SAME_STYLE_DISTRACTORS of the answer's style, the rest of other styles,
    each a different item, none the answer's item. Each is a token drawn uniformly among the
    split's tokens left (so an item is drawn as often as it occurs in outfits, as answers are: a
    model that learns how popular items are gains nothing from it). None when the split lacks
    them (the question is left out)."""
    same = {i: tokens for i, tokens in by_style.get(style, {}).items() if i != answer}
    other = {i: tokens for s, by_item in by_style.items() if s != style for i, tokens in by_item.items()}
    picked = _tokens(rng, same, SAME_STYLE_DISTRACTORS) + _tokens(rng, other, 3 - SAME_STYLE_DISTRACTORS)
    return picked if len(picked) == 3 else None


def _tokens(rng: random.Random, by_item: dict[str, list[str]], n: int) -> list[str]:
    """Up to ``n`` tokens of different items, each drawn uniformly among the tokens of the items not drawn yet."""
    left = sorted((t, i) for i, tokens in by_item.items() for t in tokens)
    out = []
    for _ in range(n):
        if not left:
            break
        token, item = rng.choice(left)
        out.append(token)
        left = [(t, i) for t, i in left if i != item]
    return out
