"""`/generate` and `/ui/generate`: images for a prompt from the latest diffusion model (kept warm)
and, for each image, its nearest REAL items in a vector space.

The images are written and recorded as `atelier generate` does (`flows.jobs.generate`: PNGs under
``HOME/generated/<version>/``, rows of the lake dataset ``generated``), so each is an item like any
other (``/items/{id}/image``, ``/neighbours/{id}`` once embedded). Each is embedded by the space's
latest model (`flows.jobs.generated.embed_paths`) and searched with dataset ``generated`` left
out inside the search. One generation at a time per process (`Warm.generating`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from flows.api.warm import Warm

GENERATED = "generated"


@dataclass
class Generated:
    generation: object  # flows.jobs.generate.Generation
    space: str
    space_model: str  # the model_version that embedded the images
    nearest: list[list[dict]]  # per image: the search's rows, nearest first
    note: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)


def run_generate(warm: Warm, prompt: str, n: int, steps: int, guidance: float, seed: int, space: str, k: int) -> Generated:
    """Generate, record, embed, search (see the module docstring). Refused before anything is
    generated: an unknown or empty space (404 / 503 naming `atelier embed SPACE`), a home without
    a diffusion model (503 naming `atelier train diffusion`)."""
    from flows.jobs.generate import generate_images
    from flows.jobs.generated import embed_paths
    from store.vectors import UnknownSpaceError, lance_filter

    t0 = time.perf_counter()
    if space not in warm.store.spaces():
        raise UnknownSpaceError(f"vector space {space!r} has no vectors yet: run `atelier embed {space}` first")
    model = warm.diffusion()  # NoModelError: run `atelier train diffusion`
    with warm.generating:
        t1 = time.perf_counter()
        found = generate_images(warm.home, prompt, n=n, steps=steps, guidance=guidance, seed=seed, model=model)
        t2 = time.perf_counter()
        vectors, version = embed_paths(warm.home, space, found.paths)
    t3 = time.perf_counter()
    where = lance_filter("dataset", GENERATED, negate=True)
    nearest = [warm.store.search(space, vector, k=k, where=where).to_pylist() for vector in vectors]
    stored = warm.store.table(space).to_lance().to_table(columns=["model_version"], filter=where, limit=1)["model_version"].to_pylist()
    note = None
    if stored and stored[0] != version:
        note = (f"the {space} vectors were made by {stored[0]}, the generated images by {version}: "
                f"run `atelier embed {space}` so that both are in the same space")  # fmt: skip
    t4 = time.perf_counter()
    ms = {"load": t1 - t0, "generate": t2 - t1, "embed": t3 - t2, "search": t4 - t3}
    return Generated(found, space, version, nearest, note, {k_: round(v * 1000, 3) for k_, v in ms.items()})
