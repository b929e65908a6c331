"""`/extract` and `/ui/extract`: an uploaded person photo and its parse map -> the garment the
person wears (the latest extractor, kept warm) and, with a space, the nearest catalogue items.

Uploads are written to a private temporary folder, read from there by the same code as
`atelier extract` (sizes checked from the headers before decoding, the parse map must be a
palette image) and removed after the request; nothing from the request names a file.
"""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path

from flows.api.warm import Warm

MAX_UPLOAD = 16 << 20  # bytes of an /extract request (a photo and its parse map)


def run_extract(warm: Warm, image: bytes, parse: bytes, space: str | None, k: int, where: str | None):
    """(Extraction, the garment as a PNG data: URI)."""
    from flows.jobs.extract import extract_garment, png_bytes, shop_the_look

    if not image or not parse:
        raise ValueError("upload both the person photo (image) and its parse map (parse, a palette PNG)")
    if space is not None and space not in warm.store.spaces():
        from store.vectors import UnknownSpaceError

        raise UnknownSpaceError(f"unknown vector space {space!r}; spaces with vectors: {', '.join(warm.store.spaces())}")
    model = warm.extractor()
    with tempfile.TemporaryDirectory(prefix="atelier-extract-") as tmp:
        person, parse_path = Path(tmp) / "person", Path(tmp) / "parse"
        person.write_bytes(image)
        parse_path.write_bytes(parse)
        try:
            found = extract_garment(warm.home, person, parse_path, out=Path(tmp) / "garment.png", model=model)
        except (OSError, ValueError) as e:  # name the uploads, not the temporary files
            text = str(e).replace(str(person), "the uploaded image").replace(str(parse_path), "the uploaded parse map")
            raise ValueError(text) from None
        if space:
            shop_the_look(warm.home, found, space, k=k, where=where, gallery=False)
        found.path = None  # the temporary file is gone with the folder
        found.parse = "uploaded"
    return found, "data:image/png;base64," + base64.b64encode(png_bytes(found.garment)).decode()
