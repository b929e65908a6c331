"""``clip``: transformers ``CLIPModel`` (image and text towers, one shared space).

Two ways to get one:

- :meth:`ClipEmbedder.from_checkpoint` loads a local Hugging Face CLIP checkpoint directory
  (e.g. a saved ``openai/clip-vit-base-patch32``: ``config.json`` with ``model_type`` "clip",
  weights, tokenizer files). Nothing is downloaded (``local_files_only``). A directory that is
  not such a checkpoint is a :class:`NotAClipCheckpoint` error saying what is missing.
- ``ClipEmbedder(ClipConfig(vocab=...))`` builds a small CLIP from scratch (random init) with
  a word tokenizer made from the training captions (:class:`models.clip_text.WordTokenizer`).

Inputs: images as float tensors in [0, 1], (B, 3, H, W), resized to ``config.image_size`` by
the caller (or here); the model applies the normalisation itself (as ``resnet`` does ImageNet's):
CLIP's mean/std, or those of a checkpoint's ``preprocessor_config.json``, the processor's part
that matters once images are tensors.
Texts go through :meth:`ClipEmbedder.tokenize` (truncated to the text tower's position limit).
``save_pretrained`` writes config.json + model.safetensors (+ metrics.json) and the tokenizer
files; ``from_pretrained`` reads them back.
"""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from models.clip_text import HFTokenizer, Tokens, WordTokenizer, load_tokenizer
from models.pretrained import ModelFileError, PretrainedMixin, short_cause

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP's image normalisation
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class NotAClipCheckpoint(ValueError):
    """A ``--weights`` directory that is not a Hugging Face CLIP checkpoint."""


@dataclass
class ClipConfig:
    vocab_size: int = 1000  # text tower vocabulary (set from the tokenizer)
    image_size: int = 64  # vision tower input side, px (the sample images are 128 px)
    patch_size: int = 8  # ViT patch side: 64 px -> 8 x 8 patches
    vision_width: int = 128  # ViT hidden size (ViT-B/32: 768); small enough to train on 2 CPU cores
    vision_layers: int = 4  # ViT blocks (ViT-B/32: 12)
    text_width: int = 128  # text transformer hidden size (ViT-B/32: 512)
    text_layers: int = 3  # text transformer blocks (ViT-B/32: 12)
    heads: int = 4  # attention heads of both towers
    max_length: int = 32  # text tower position limit, tokens; longer texts are truncated (the sample captions use <= 12)
    projection_dim: int = 128  # shared embedding width: the vector stored per item
    tokenizer: str = "words"  # "words" (own vocabulary, vocab.json) or "clip" (the checkpoint's BPE files)
    image_mean: tuple[float, float, float] = CLIP_MEAN  # input normalisation (a checkpoint's preprocessor_config.json wins)
    image_std: tuple[float, float, float] = CLIP_STD  # idem
    hf_config: dict | None = None  # the checkpoint's full CLIPConfig when loaded from one (then the sizes above are informational)
    base_weights: str | None = None  # checkpoint directory the weights started from; None = random init (provenance)

    def clip_config(self):
        """The transformers ``CLIPConfig`` this config builds."""
        from transformers import CLIPConfig

        if self.hf_config is not None:
            return CLIPConfig.from_dict(self.hf_config)
        text = {"vocab_size": self.vocab_size, "hidden_size": self.text_width, "intermediate_size": 4 * self.text_width,
                "num_hidden_layers": self.text_layers, "num_attention_heads": self.heads,
                "max_position_embeddings": self.max_length, "projection_dim": self.projection_dim,
                "pad_token_id": WordTokenizer.pad_token_id, "bos_token_id": WordTokenizer.bos_token_id,
                "eos_token_id": WordTokenizer.eos_token_id}  # fmt: skip
        vision = {"hidden_size": self.vision_width, "intermediate_size": 4 * self.vision_width,
                  "num_hidden_layers": self.vision_layers, "num_attention_heads": self.heads,
                  "image_size": self.image_size, "patch_size": self.patch_size, "projection_dim": self.projection_dim}  # fmt: skip
        return CLIPConfig(text_config=text, vision_config=vision, projection_dim=self.projection_dim)


def _features(out) -> torch.Tensor:
    """``get_*_features`` returns a tensor (transformers 4) or an output whose pooler_output is
    the projected embedding (transformers 5)."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class ClipEmbedder(PretrainedMixin, nn.Module):
    """CLIP's two towers; ``embed`` (images) and ``embed_text`` (texts) give unit vectors."""

    model_type = "clip"
    config_class = ClipConfig

    def __init__(self, config: ClipConfig, tokenizer=None):
        super().__init__()
        from transformers import CLIPModel

        self.config = config
        self.clip = CLIPModel(config.clip_config())
        self.tokenizer = tokenizer
        self.init_constants()

    def init_constants(self) -> None:
        """CLIP's input normalisation (non-persistent: not in model.safetensors)."""
        self.register_buffer("mean", torch.tensor(self.config.image_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.config.image_std).view(1, 3, 1, 1), persistent=False)

    @property
    def pretrained(self) -> bool:
        """Whether the weights started from a checkpoint (False: random init)."""
        return self.config.base_weights is not None

    # -- text ------------------------------------------------------------------------------------

    def tokenize(self, texts: list[str]) -> Tokens:
        """Token ids of ``texts`` on the model's device, truncated to ``config.max_length``."""
        if self.tokenizer is None:
            raise ValueError("this clip model has no tokenizer (load it with from_pretrained)")
        tokens = self.tokenizer(texts, self.config.max_length)
        device = self.mean.device
        return Tokens(tokens.input_ids.to(device), tokens.attention_mask.to(device), tokens.n_truncated)

    def text_features(self, tokens: Tokens) -> torch.Tensor:
        return _features(self.clip.get_text_features(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask))

    def embed_text(self, texts: list[str]) -> torch.Tensor:
        """L2-normalised float32 text embeddings, (B, projection_dim)."""
        return F.normalize(self.text_features(self.tokenize(texts)).float(), dim=1)

    # -- images ----------------------------------------------------------------------------------

    def image_features(self, x: torch.Tensor) -> torch.Tensor:
        size = self.clip.config.vision_config.image_size
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return _features(self.clip.get_image_features(pixel_values=(x - self.mean) / self.std))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """L2-normalised float32 image embeddings, (B, projection_dim)."""
        return F.normalize(self.image_features(x).float(), dim=1)

    def forward(self, images: torch.Tensor, tokens: Tokens) -> torch.Tensor:
        """Image-to-text logits (B, B): scaled cosine similarities, row i's match is column i."""
        img = F.normalize(self.image_features(images).float(), dim=1)
        txt = F.normalize(self.text_features(tokens).float(), dim=1)
        return self.clip.logit_scale.exp().clamp(max=100) * img @ txt.T

    # -- save / load -----------------------------------------------------------------------------

    def save_extra(self, directory: Path) -> None:
        if self.tokenizer is not None:
            self.tokenizer.save(directory)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: str | torch.device = "cpu"):
        model = super().from_pretrained(directory, device=device)
        model.tokenizer = load_tokenizer(directory, model.config.tokenizer)
        return model

    @classmethod
    def from_checkpoint(cls, directory: str | os.PathLike) -> ClipEmbedder:
        """A local Hugging Face CLIP checkpoint (weights + tokenizer), nothing downloaded."""
        from transformers import CLIPModel

        directory = Path(directory)
        config_path = directory / "config.json"
        if not directory.is_dir():
            raise NotAClipCheckpoint(f"{directory}: not a directory (--weights takes a CLIP checkpoint directory)")
        if not config_path.is_file():
            raise NotAClipCheckpoint(f"{directory}: not a CLIP checkpoint (no config.json)")
        try:
            data = json.loads(config_path.read_text())
            model_type = data.get("model_type")
        except (json.JSONDecodeError, AttributeError) as e:
            raise NotAClipCheckpoint(f"{config_path}: not a CLIP config ({e})") from e
        if model_type != "clip":
            raise NotAClipCheckpoint(f"{directory}: config.json has model_type {model_type!r}, a CLIP checkpoint has 'clip'")
        if "tokenizer" in data and "text_config" not in data:
            raise NotAClipCheckpoint(f"{directory}: an atelier clip model, not a Hugging Face checkpoint "
                                     f"(a trained model to embed or search with, not a starting checkpoint)")
        if "text_config" not in data or "vision_config" not in data:
            raise NotAClipCheckpoint(f"{directory}: config.json has no text_config/vision_config (not a CLIP checkpoint)")
        weights = [p.name for p in directory.iterdir() if p.suffix in (".safetensors", ".bin")]
        if not weights:
            raise NotAClipCheckpoint(f"{directory}: no weights (model.safetensors or pytorch_model.bin)")
        try:
            tokenizer = HFTokenizer.load(directory)
        except ValueError as e:
            raise NotAClipCheckpoint(str(e)) from e
        try:
            hf = CLIPModel.from_pretrained(str(directory), local_files_only=True)
        except Exception as e:  # a truncated model.safetensors, a pickle with code, ...: name the files
            files = directory / weights[0] if len(weights) == 1 else directory
            unsafe = isinstance(e, pickle.UnpicklingError) or "weights_only" in str(e)
            reason = ("not weights atelier can load safely (a pickle with code or objects)" if unsafe
                      else f"damaged or incomplete weights ({short_cause(e)})")  # fmt: skip
            raise ModelFileError(files, reason, "give a complete Hugging Face CLIP checkpoint directory (weights as "
                                                "model.safetensors), e.g. one saved with CLIPModel.save_pretrained") from e  # fmt: skip
        mean, std = CLIP_MEAN, CLIP_STD
        processor = directory / "preprocessor_config.json"  # the checkpoint's image processor: its normalisation
        if processor.is_file():
            pre = json.loads(processor.read_text())
            mean, std = tuple(pre.get("image_mean", mean)), tuple(pre.get("image_std", std))
        hf_config = hf.config.to_dict()
        config = ClipConfig(
            vocab_size=hf.config.text_config.vocab_size, image_size=hf.config.vision_config.image_size,
            patch_size=hf.config.vision_config.patch_size, vision_width=hf.config.vision_config.hidden_size,
            vision_layers=hf.config.vision_config.num_hidden_layers, text_width=hf.config.text_config.hidden_size,
            text_layers=hf.config.text_config.num_hidden_layers, heads=hf.config.text_config.num_attention_heads,
            max_length=hf.config.text_config.max_position_embeddings, projection_dim=hf.config.projection_dim,
            tokenizer="clip", image_mean=mean, image_std=std,
            hf_config=json.loads(json.dumps(hf_config, default=str)), base_weights=str(directory),
        )  # fmt: skip
        with torch.device("meta"):
            model = cls(config, tokenizer)
        model.clip = hf
        model.init_constants()
        return model.eval()


def clip_loss(logits: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric InfoNCE: cross-entropy over images->texts and texts->images."""
    labels = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
