"""The Fashion Synthesis captions and images the ``diffusion`` kind trains and is scored on."""

from __future__ import annotations

from pathlib import Path

from etl.common import stable_split
from store.sql import query

SPLIT_RULE = ("train / val = the official Synthesis train split, 90/10 by a stable hash of the image name; test = the "
              "official test split, scored only when asked")  # fmt: skip
VAL_FRACTIONS = (0.9, 0.1)  # train / val of the official train split (no test share: test is official)


def caption_rows(home: Path | str, seed: int = 0) -> dict[str, dict[str, list]]:
    """split (train / val / test) -> columns name, caption, image_path, h5_index, color, sleeve,
    category, gender of the captioned Synthesis images (see SPLIT_RULE)."""
    try:
        t = query(home, "SELECT i.name, c.caption, i.h5_path AS image_path, c.index AS h5_index, c.color, c.sleeve, "
                        "c.category, c.gender, c.split FROM synthesis_captions c JOIN synthesis_images i USING (index) "
                        "WHERE i.captioned ORDER BY c.index").to_pylist()  # fmt: skip
    except Exception as e:
        raise FileNotFoundError(f"no Fashion Synthesis captions in the lake at {Path(home) / 'lake'}: run "
                                f"`atelier ingest synthesis PATH` first ({str(e).splitlines()[0]})") from e  # fmt: skip
    out: dict[str, dict[str, list]] = {s: {} for s in ("train", "val", "test")}
    for row in t:
        if not (row["caption"] or "").strip():
            continue
        split = "test" if row["split"] == "test" else stable_split(row["name"], seed, fractions=VAL_FRACTIONS)
        for key, value in row.items():
            if key != "split":
                out[split].setdefault(key, []).append(value)
    return out


def decode(rows: dict[str, list], size: int):
    """(uint8 images (N, 3, size, size), kept row positions, [(name, error)] of images that failed)."""
    import torch

    from etl.loader import ImageFolderRows

    images = ImageFolderRows(rows.get("image_path", []), size, h5_index=rows.get("h5_index", []))
    kept, failed, out = [], [], []
    for i in range(len(images)):
        item = images[i]
        if item["ok"]:
            out.append((item["image"] * 255).round().to(torch.uint8))
            kept.append(i)
        else:
            failed.append((rows["name"][i], item["error"]))
    stacked = torch.stack(out) if out else torch.zeros((0, 3, size, size), dtype=torch.uint8)
    return stacked, kept, failed


def subset(rows: dict[str, list], keep: list[int]) -> dict[str, list]:
    return {k: [v[i] for i in keep] for k, v in rows.items()}
