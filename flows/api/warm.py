"""What the query service keeps loaded between requests: one vector store per home and the latest
umBERT / WumBERT, garment extractor and diffusion model, reloaded when a newer version lands
(`atelier train` while the service runs). Generation runs one request at a time (`generating`).

A request that arrives while a model is replaced is answered by the old or the new model (the
swap is one assignment under a lock; a loaded model is never mutated). The clip text tower is
cached by `flows.jobs.search.load_clip` (keyed by directory and weights mtime), the same way."""

from __future__ import annotations

import threading
from pathlib import Path

from flows.jobs.complete import CompletionModel
from store import Lake, VectorStore
from store.files import home_path
from store.models import latest_model


class Warm:
    """The loaded state of one home (see the module docstring)."""

    def __init__(self, home: Path | str):
        self.home = home_path(home)
        self.store = VectorStore(self.home)
        self._lock = threading.Lock()
        self._completion: dict[str, CompletionModel] = {}
        self._extractor = None
        self._details: dict[str, dict[str, dict]] = {}  # dataset -> item_id -> details
        self._details_key: dict[str, str] = {}  # dataset -> the lake version they were read from
        self._diffusion = None  # (model, path)
        self.generating = threading.Lock()  # one generation at a time (the model's forward is not shared)

    def completion(self, name: str) -> CompletionModel:
        """The latest ``name`` (umbert or wumbert) model, loaded once per version."""
        path = latest_model(self.home, name)  # NoModelError naming `atelier train NAME` when none
        loaded = self._completion.get(name)
        if loaded is not None and loaded.path == path:
            return loaded
        with self._lock:
            loaded = self._completion.get(name)
            if loaded is None or loaded.path != path:
                loaded = CompletionModel(self.home, name, path)
                loaded.details = self.details
                self._completion[name] = loaded
        return loaded

    def extractor(self):
        """The latest garment extractor, loaded once per version (``.path`` set)."""
        from flows.jobs.extract import load_extractor

        path = latest_model(self.home, "extractor")  # NoModelError naming `atelier train extractor`
        loaded = self._extractor
        if loaded is not None and loaded.path == path:
            return loaded
        with self._lock:
            if self._extractor is None or self._extractor.path != path:
                model, path = load_extractor(self.home)
                model.path = path
                self._extractor = model
        return self._extractor

    def diffusion(self):
        """(the latest diffusion model, its version directory), loaded once per version."""
        from flows.jobs.generate import load_diffusion

        path = latest_model(self.home, "diffusion")  # NoModelError naming `atelier train diffusion`
        loaded = self._diffusion
        if loaded is not None and loaded[1] == path:
            return loaded
        with self._lock:
            if self._diffusion is None or self._diffusion[1] != path:
                self._diffusion = load_diffusion(self.home, path.name)
        return self._diffusion

    def details(self, item_ids) -> dict[str, dict]:
        """`flows.jobs.analyses.item_details` from memory: every item's title, category and image,
        read once per lake version of each dataset (an ingest or a generation while the service
        runs is picked up; only the dataset that changed is read again)."""
        from flows.jobs.analyses import ITEM_DETAILS, all_item_details

        lake = Lake(self.home)
        for dataset in ITEM_DETAILS:
            key = str(lake.current(dataset))  # the version the dataset's pointer names (a symlink, an object)
            if self._details_key.get(dataset) != key:
                with self._lock:
                    if self._details_key.get(dataset) != key:
                        self._details[dataset] = all_item_details(self.home, [dataset])
                        self._details_key[dataset] = key
        out: dict[str, dict] = {}
        for found in self._details.values():
            out.update((i, found[i]) for i in item_ids if i in found)
        return out

    def loaded(self) -> dict[str, str]:
        """kind -> the version directory currently loaded."""
        loaded = {name: m.path.name for name, m in self._completion.items()}
        return {**loaded, "diffusion": self._diffusion[1].name} if self._diffusion else loaded
