"""The query service's request and response bodies (pydantic: validated in, documented at /docs).

Field names follow the CLI options (`text`, `mode`, `k`, `where`, `space`, `items`, `missing`,
`model`), so a request reads like the command it replaces."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

MAX_K = 1000  # results per query
MAX_ITEMS = 32  # items of an outfit to complete
MAX_TEXT = 1000  # characters of a search text or a where filter
MAX_SQL = 10_000  # characters of a statement


class SearchRequest(BaseModel):
    text: str = Field(min_length=1, max_length=MAX_TEXT, description="what to look for, e.g. 'long sleeve red striped top'")
    mode: Literal["vector", "hybrid", "text"] = Field("vector", description="CLIP vectors, vectors + full text (RRF), full text only")
    k: int = Field(10, ge=1, le=MAX_K, description="results")
    where: str | None = Field(None, max_length=MAX_TEXT, description="SQL filter on the space's columns, e.g. dataset = 'polyvore'")

    @field_validator("text")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("the search text is empty: give a few words")
        return v


class CompleteRequest(BaseModel):
    items: list[str] = Field(min_length=1, max_length=MAX_ITEMS, description="item ids of the outfit so far")
    missing: str = Field(min_length=1, max_length=100, description="semantic category of the item to suggest, e.g. shoes")
    model: Literal["umbert", "wumbert"] = Field("umbert", description="outfit model (its latest version)")
    k: int = Field(10, ge=1, le=MAX_K, description="suggestions")
    gallery: bool = Field(False, description="also write the HTML gallery under the home's reports/ (as the CLI does)")


class SqlRequest(BaseModel):
    sql: str = Field(min_length=1, max_length=MAX_SQL, description="one read-only statement (the `atelier sql` sandbox)")
    limit: int = Field(1000, ge=1, le=100_000, description="rows returned at most")


class Item(BaseModel):
    item_id: str
    semantic_category: str | None = None
    dataset: str | None = None
    title: str | None = None
    text: str | None = None  # the text the clip space indexes for the item (search results)
    distance: float | None = None  # vector searches and neighbours: cosine distance
    score: float | None = None  # hybrid / full-text searches: relevance
    image_url: str | None = None  # /items/{item_id}/image when the lake holds a usable image


class SearchResponse(BaseModel):
    text: str
    mode: str
    model: str  # the clip model directory used ('' for full-text search)
    truncated: bool  # the text was longer than the text tower's limit
    items: list[Item]
    timings_ms: dict[str, float]


class NeighboursResponse(BaseModel):
    query: Item
    space: str
    where: str | None
    items: list[Item]
    gallery: str | None = None  # the HTML page written, when asked for
    timings_ms: dict[str, float]


class CompleteResponse(BaseModel):
    model: str  # e.g. "umbert v3"
    space: str  # the vector space searched
    missing: str
    context: list[Item]
    items: list[Item]
    gallery: str | None = None  # the HTML page written, when asked for
    timings_ms: dict[str, float]


class SqlResponse(BaseModel):
    columns: list[str]
    rows: list[dict]
    truncated: bool


class Health(BaseModel):
    status: Literal["ok"]
    home: str
    spaces: list[str]  # vector spaces with vectors
    models: dict[str, str]  # kind -> latest version directory name


class ExtractResponse(BaseModel):
    model: str  # e.g. "extractor v2"
    garment: str  # the extracted garment, a PNG as a data: URI
    space: str | None  # the space searched (shop the look), when asked for
    items: list[Item]  # the nearest items of that space to the garment
    timings_ms: dict[str, float]


MAX_GENERATE = 8  # images per /generate request
MAX_STEPS = 100  # sampling steps per /generate request


class GenerateRequest(BaseModel):
    prompt: str = Field(min_length=1, max_length=MAX_TEXT, description="what to draw, e.g. 'a woman in a red long-sleeved dress'")
    n: int = Field(2, ge=1, le=MAX_GENERATE, description="images (one seed, n noise draws)")
    steps: int = Field(25, ge=1, le=MAX_STEPS, description="DDIM sampling steps")
    guidance: float = Field(3.0, ge=1.0, le=20.0, description="classifier-free guidance scale (1: none)")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="seed of the noise: the same prompt, seed and model give the same images")
    space: str = Field("resnet", max_length=100, description="the space whose nearest real items are returned (its latest model embeds the images)")
    k: int = Field(5, ge=1, le=100, description="nearest real items per image")

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, v: str) -> str:
        from flows.jobs.generate import check_prompt

        return check_prompt(v)  # ValueError (a 422) naming what is wrong: empty, too long


class GeneratedImage(BaseModel):
    item_id: str  # <model version>/<hash>_<i>: a row of generated_images, an item of /items and /neighbours
    image_url: str  # /items/{item_id}/image
    nearest: list[Item]  # the k nearest real items (dataset 'generated' left out), nearest first


class GenerateResponse(BaseModel):
    prompt: str
    model: str  # e.g. "diffusion v1"
    seed: int
    steps: int
    guidance: float
    truncated: bool  # the prompt was longer than the text tower takes (its end was cut)
    space: str  # the space searched
    space_model: str  # the model_version that embedded the generated images
    note: str | None = None  # e.g. the space's vectors were made by another model version
    lake_rows: int  # rows of generated_images after this request
    images: list[GeneratedImage]
    timings_ms: dict[str, float]
