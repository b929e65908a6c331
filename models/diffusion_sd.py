"""``diffusion_sd``: a local Stable Diffusion checkpoint (diffusers layout) fine-tuned on captions.

- :class:`StableDiffusionModel`: the checkpoint's UNet trained in its VAE's latent space, the VAE
  and the CLIP text encoder frozen. With ``lora_rank``: LoRA (peft) on the UNet's attention
  projections (``to_q``, ``to_k``, ``to_v``, ``to_out.0``) and the UNet itself frozen too. It has
  the interface of `models.diffusion.TextToImage` (``config.resolution`` / ``max_length``,
  ``encode_prompts``, ``loss``, ``generate``, ``trainable_parameters``, ``save_pretrained`` /
  ``from_pretrained``): the ``diffusion`` recipe, its evaluation and ``atelier generate`` take either.
- What trains is what is saved: ``state_dict()`` is the UNet's (``unet.*``) or, with LoRA, only the
  adapter's weights. The frozen parts stay in the base checkpoint, whose path (and a digest of its
  weight files) config.json records: a saved model loads only beside its base, and is refused
  naming the base when that is gone or its weights changed.
- Training: latents = VAE(image) x ``scaling_factor``; DDPM's MSE with the checkpoint's own noise
  schedule and prediction type; each caption replaced by the empty prompt with probability
  ``cond_dropout`` (the unconditional input Stable Diffusion was trained with). Sampling: DDIM from
  noise drawn on the CPU with the seed (the same images for the same seed), classifier-free guidance
  against the empty prompt, VAE decode.
- :func:`check_sd_base`: a base directory's files, layout (SD 1.x / 2.x: one text encoder) and the
  image sides it takes; :func:`load_text_to_image`: any saved text-to-image model by its model_type.

Weights are read with safetensors or ``torch.load(weights_only=True)`` (diffusers and transformers
do so for ``.bin``), from local files only. diffusers, transformers and peft are imported where used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from models.diffusion import EncodedPrompts, UNetTraining, check_sd_checkpoint
from models.pretrained import (
    WEIGHTS_NAME,
    ModelFileError,
    PretrainedMixin,
    _read_config,
    autocast_for,
    config_from_dict,
    load_safetensors,
    short_cause,
)

LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")  # the attention projections LoRA adapts (self- and cross-attention)
SD_FIX = "give a complete Stable Diffusion 1.x / 2.x directory in diffusers layout (as StableDiffusionPipeline.save_pretrained writes)"


@dataclass
class SDConfig:
    base: str = ""  # the local Stable Diffusion directory (diffusers layout) fine-tuned from: VAE, text encoder, tokenizer, scheduler (and the UNet under LoRA) load from it
    resolution: int = 512  # image side in pixels, trained and generated; a multiple of the base's pixel factor (VAE factor x 2**(UNet levels - 1))
    lora_rank: int | None = None  # LoRA rank on the UNet's attention projections (to_q, to_k, to_v, to_out.0); None: the whole UNet trains
    lora_alpha: float | None = None  # LoRA scale numerator (updates scaled by alpha / rank); None: = lora_rank (scale 1)
    max_length: int = 77  # prompt tokens (padded to this as Stable Diffusion pads, longer prompts truncated): the text encoder's position limit
    text_model: str | None = None  # provenance of the frozen text tower: "text_encoder of <base>"
    base_digest: str = ""  # digest of the base's weight files (name, size, first and last MiB): a saved model is refused on a changed base

    def __post_init__(self):
        if self.lora_rank is not None and self.lora_rank < 1:
            raise ValueError(f"lora_rank must be at least 1, got {self.lora_rank}")
        if self.resolution < 8:
            raise ValueError(f"resolution must be at least 8, got {self.resolution}")


def _import(module: str, package: str, what: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{what} needs {package}: pip install {package}") from e


def _json_file(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ModelFileError(path, f"unreadable ({short_cause(e)})", SD_FIX) from e


def check_sd_base(directory: str | os.PathLike, resolution: int | None = None) -> int:
    """``check_sd_checkpoint`` (every file, a :class:`ModelFileError` naming the first missing one), then
    the layout (one text encoder, a plain text-conditioned UNet: SDXL is refused) and, when given, that
    ``resolution`` fits (a ValueError saying which sides do). Returns the pixel factor."""
    directory = Path(directory)
    check_sd_checkpoint(directory)
    index, unet = _json_file(directory / "model_index.json"), _json_file(directory / "unet/config.json")
    vae = _json_file(directory / "vae/config.json")
    if "text_encoder_2" in index or unet.get("addition_embed_type"):
        raise ModelFileError(directory / "model_index.json", "an SDXL-style checkpoint (two text encoders / added "
                             "conditions): only Stable Diffusion 1.x / 2.x layouts are supported", SD_FIX)  # fmt: skip
    vae_factor = 2 ** (len(vae.get("block_out_channels", (0,))) - 1)
    levels = len(unet.get("down_block_types", (0,)))
    factor = vae_factor * 2 ** (levels - 1)
    if resolution is not None and (resolution % factor or resolution < factor):
        native = int(unet.get("sample_size") or 64) * vae_factor
        raise ValueError(f"resolution {resolution} does not fit the checkpoint {directory}: its VAE scales images down "
                         f"{vae_factor}x and its UNet halves the latents {levels - 1} times, so the side must be a multiple "
                         f"of {factor} (it was trained at {native}; e.g. --resolution {native} or {max(factor, native // 2)})")  # fmt: skip
    return factor


def base_digest(directory: str | os.PathLike) -> str:
    """sha256 over the names, sizes and first and last MiB of the UNet's, VAE's and text encoder's
    weight files: cheap (a few MiB read) and changes when the weights are replaced."""
    directory, h = Path(directory), hashlib.sha256()
    for sub in ("unet", "vae", "text_encoder"):
        for path in sorted((directory / sub).glob("*")):
            if path.suffix not in (".safetensors", ".bin"):
                continue
            size = path.stat().st_size
            h.update(f"{sub}/{path.name}:{size}".encode())
            with open(path, "rb") as f:
                h.update(f.read(1 << 20))
                f.seek(max(0, size - (1 << 20)))
                h.update(f.read(1 << 20))
    return h.hexdigest()[:16]


BASE_PARTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler_config")


def load_base(config: SDConfig, only: tuple[str, ...] = BASE_PARTS) -> dict:
    """The base checkpoint's UNet, VAE, text encoder, tokenizer and scheduler config (``only`` those;
    local files only); :class:`ModelFileError` naming the base when it is gone, changed or damaged."""
    base = Path(config.base)
    if not base.is_dir():
        raise ModelFileError(base, "the base Stable Diffusion checkpoint this model was fine-tuned from is gone (config.json "
                             "names it: the model keeps only what it trained)", "put the checkpoint back at that path")  # fmt: skip
    check_sd_base(base, config.resolution)
    if config.base_digest and base_digest(base) != config.base_digest:
        raise ModelFileError(base, "its weight files are not the ones this model was fine-tuned from (digest "
                             f"{base_digest(base)}, config.json has {config.base_digest})", "put the original checkpoint back")  # fmt: skip
    diffusers = _import("diffusers", "diffusers", "a Stable Diffusion checkpoint")
    from transformers import CLIPTextModel, CLIPTokenizer

    parts = {}
    for name, load in (("unet", lambda: diffusers.UNet2DConditionModel.from_pretrained(base, subfolder="unet", local_files_only=True)),
                       ("vae", lambda: diffusers.AutoencoderKL.from_pretrained(base, subfolder="vae", local_files_only=True)),
                       ("text_encoder", lambda: CLIPTextModel.from_pretrained(base / "text_encoder", local_files_only=True)),
                       ("tokenizer", lambda: CLIPTokenizer.from_pretrained(base / "tokenizer", local_files_only=True)),
                       ("scheduler_config", lambda: dict(diffusers.DDPMScheduler.load_config(base, subfolder="scheduler"))),
                       ):  # fmt: skip
        if name not in only:
            continue
        try:
            parts[name] = load()
        except (OSError, ValueError, RuntimeError, KeyError) as e:
            raise ModelFileError(base / name.replace("_config", ""), f"cannot be loaded ({short_cause(e)})", SD_FIX) from e
    return parts


class StableDiffusionModel(UNetTraining, PretrainedMixin, nn.Module):
    """A Stable Diffusion checkpoint's UNet (or LoRA on it) + frozen VAE and text encoder (see the module docstring)."""

    model_type = "diffusion_sd"
    config_class = SDConfig

    def __init__(self, config: SDConfig, parts: dict | None = None):
        super().__init__()
        parts = parts or load_base(config)
        self.config = config
        self.unet, self.vae, self.text_encoder = parts["unet"], parts["vae"], parts["text_encoder"]
        self.tokenizer, self.scheduler_config = parts["tokenizer"], {k: v for k, v in parts["scheduler_config"].items()
                                                                       if not k.startswith("_")}  # fmt: skip
        self.vae.requires_grad_(False)
        self.text_encoder.requires_grad_(False)
        if config.lora_rank:
            peft = _import("peft", "peft", "--lora-rank (LoRA)")
            self.unet.requires_grad_(False)
            self.unet.add_adapter(peft.LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha or config.lora_rank,
                                                  init_lora_weights="gaussian", target_modules=list(LORA_TARGETS)))  # fmt: skip
        self.train(self.training)

    @classmethod
    def from_base(cls, directory: str | os.PathLike, resolution: int, lora_rank: int | None = None) -> StableDiffusionModel:
        """A new model from the local checkpoint ``directory`` (its UNet as the starting point; with
        ``lora_rank``, a fresh LoRA adapter on it)."""
        base = Path(directory).resolve()
        check_sd_base(base, resolution)  # a missing file named, a resolution that does not fit said, before any loading
        config = SDConfig(base=str(base), resolution=resolution, lora_rank=lora_rank, text_model=f"text_encoder of {base}",
                          base_digest=base_digest(base))  # fmt: skip
        parts = load_base(config)
        limit = parts["text_encoder"].config.max_position_embeddings
        config.max_length = min(limit, int(getattr(parts["tokenizer"], "model_max_length", limit) or limit))
        return cls(config, parts)

    # -- modes, parameters, state ------------------------------------------------------------

    def train(self, mode: bool = True):
        """As ``nn.Module.train``, but the frozen VAE and text encoder stay in eval mode."""
        super().train(mode)
        self.vae.eval()
        self.text_encoder.eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What the optimizer gets: the UNet's parameters, or with LoRA only the adapter's."""
        return [p for p in self.unet.parameters() if p.requires_grad]

    def parameter_counts(self) -> dict:
        count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
        return {"unet": count(self.unet) - (sum(p.numel() for p in self.trainable_parameters()) if self.config.lora_rank else 0),
                "vae": count(self.vae), "text_encoder": count(self.text_encoder),
                "trainable": sum(p.numel() for p in self.trainable_parameters())}  # fmt: skip

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    def _unets(self) -> dict[str, nn.Module]:
        return {"unet": self.unet, **({"ema_unet": self.ema_unet} if hasattr(self, "ema_unet") else {})}

    def _unet_state(self, unet: nn.Module, keep_vars: bool = False) -> dict[str, torch.Tensor]:
        if self.config.lora_rank:
            from peft.utils import get_peft_model_state_dict

            return get_peft_model_state_dict(unet)
        return unet.state_dict(keep_vars=keep_vars)

    def state_dict(self, *args, destination=None, prefix: str = "", keep_vars: bool = False):
        """What trains and is saved: ``unet.*`` (the UNet's weights, or with LoRA only the adapter's), and
        ``ema_unet.*`` the same way while an EMA is kept (:meth:`add_ema`)."""
        out = destination if destination is not None else {}
        for name, unet in self._unets().items():
            out.update({f"{prefix}{name}.{k}": v for k, v in self._unet_state(unet, keep_vars).items()})
        return out

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """The inverse of :meth:`state_dict` (strict: every key, and only those)."""
        from torch.nn.modules.module import _IncompatibleKeys

        unets = self._unets()
        missing, unexpected = [], [k for k in state_dict if k.split(".", 1)[0] not in unets]
        for name, unet in unets.items():
            own = {k[len(name) + 1:]: v for k, v in state_dict.items() if k.startswith(name + ".")}
            expected = set(self._unet_state(unet))
            missing += sorted(f"{name}.{k}" for k in expected - set(own))
            unexpected += sorted(f"{name}.{k}" for k in set(own) - expected)
            if strict and (missing or unexpected):
                raise RuntimeError(f"weights do not match: missing {missing[:3]}, unexpected {unexpected[:3]}")
            own = {k: v for k, v in own.items() if k in expected}
            if self.config.lora_rank:
                from peft.utils import set_peft_model_state_dict

                set_peft_model_state_dict(unet, own)
            else:
                unet.load_state_dict(own, strict=False, assign=assign)  # a wrong shape is a RuntimeError
        return _IncompatibleKeys(missing, unexpected)

    # -- EMA of what trains (UNetTraining's, but the average is saved through this state dict) --------

    def keep_ema(self) -> None:
        """The UNet takes the EMA weights and the copy is dropped (what is saved is the average)."""
        average = self._unet_state(self.ema_unet)
        del self.ema_unet
        self.load_state_dict({f"unet.{k}": v for k, v in average.items()})

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: str | torch.device = "cpu") -> StableDiffusionModel:
        """The base checkpoint config.json names + this directory's model.safetensors; eval mode."""
        directory = Path(directory)
        data = _read_config(directory)
        if data.get("model_type") != cls.model_type:
            raise ValueError(f"{directory}: model_type {data.get('model_type')!r}, expected {cls.model_type!r}")
        config = config_from_dict(cls.config_class, data)
        weights = directory / WEIGHTS_NAME
        state = load_safetensors(weights, f"train the model again or delete {directory}")
        model = cls(config)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise ModelFileError(weights, f"does not match config.json ({short_cause(e)})", f"train the model again or delete {directory}") from e
        return model.to(device).eval()

    def _with_unet(self, unet: nn.Module) -> StableDiffusionModel:
        """A model sharing this one's VAE, text encoder and tokenizer, with ``unet`` (no LoRA)."""
        parts = {"unet": unet.to(self.device), "vae": self.vae, "text_encoder": self.text_encoder, "tokenizer": self.tokenizer,
                 "scheduler_config": self.scheduler_config}  # fmt: skip
        return type(self)(dataclasses.replace(self.config, lora_rank=None), parts).eval()

    def untrained_copy(self) -> StableDiffusionModel:
        """The same architecture with a random UNet (the evaluation's "untrained" reference)."""
        from diffusers import UNet2DConditionModel

        return self._with_unet(UNet2DConditionModel.from_config(self.unet.config))

    def base_copy(self) -> StableDiffusionModel:
        """The base checkpoint's UNet as it was before fine-tuning (the evaluation's "base" reference)."""
        return self._with_unet(load_base(self.config, only=("unet",))["unet"])

    # -- text, loss, sampling ----------------------------------------------------------------

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> EncodedPrompts:
        """The frozen text encoder's ``last_hidden_state`` of ``prompts`` padded to ``max_length`` (as the
        Stable Diffusion pipeline); longer prompts are truncated and counted in ``n_truncated``."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts:
            raise ValueError("no prompts: give at least one")
        n = self.config.max_length
        n_truncated = sum(len(ids) > n for ids in self.tokenizer(prompts, verbose=False)["input_ids"])
        tokens = self.tokenizer(prompts, padding="max_length", max_length=n, truncation=True, return_tensors="pt")
        ids, mask = tokens.input_ids.to(self.device), tokens.attention_mask.to(self.device)
        use_mask = getattr(self.text_encoder.config, "use_attention_mask", False)  # SD 1.x / 2.x: no mask, as trained
        hidden = self.text_encoder(ids, attention_mask=mask if use_mask else None).last_hidden_state
        return EncodedPrompts(hidden.float(), mask, n_truncated)

    def _empty(self, b: int) -> torch.Tensor:
        """The empty prompt's hidden states (the unconditional input), ``b`` times."""
        cached = getattr(self, "_empty_cache", None)
        if cached is None or cached.device != self.device:
            cached = self._empty_cache = self.encode_prompts([""]).hidden_states
        return cached.expand(b, -1, -1)

    def _predict(self, x: torch.Tensor, t, cond: torch.Tensor) -> torch.Tensor:
        with autocast_for(x.device):  # bf16 on CUDA, float32 on CPU
            return self.unet(x, t, encoder_hidden_states=cond).sample.float()

    def loss(self, images: torch.Tensor, prompts: list[str] | EncodedPrompts, generator: torch.Generator | None = None,
             cond_dropout: float = 0.1) -> torch.Tensor:  # fmt: skip
        """DDPM's MSE in latent space for ``images`` (B, 3, R, R) in [0, 1] and their prompts (or their
        :meth:`encode_prompts`); each condition replaced by the empty prompt's with probability
        ``cond_dropout``. The latent sample, noise, timesteps and dropout come from ``generator``."""
        from diffusers import DDPMScheduler

        device = self.device
        enc = self._encoded_batch(images, prompts)
        b = images.shape[0]
        if not hasattr(self, "_ddpm"):
            self._ddpm = DDPMScheduler.from_config(self.scheduler_config)
        with torch.no_grad(), autocast_for(device):
            posterior = self.vae.encode(images.to(device, torch.float32) * 2 - 1).latent_dist
        at = generator.device if generator is not None else device
        mean, std = posterior.mean.float(), posterior.std.float()
        latents = (mean + std * torch.randn(mean.shape, generator=generator, device=at).to(device)) * self.vae.config.scaling_factor
        noise = torch.randn(latents.shape, generator=generator, device=at).to(device)
        t = torch.randint(0, self._ddpm.config.num_train_timesteps, (b,), generator=generator, device=at).to(device)
        drop = (torch.rand(b, generator=generator, device=at) < cond_dropout).to(device)
        cond = torch.where(drop[:, None, None], self._empty(b), enc.hidden_states.to(device))
        pred = self._predict(self._ddpm.add_noise(latents, noise, t), t, cond)
        kind = self._ddpm.config.prediction_type
        target = noise if kind == "epsilon" else latents if kind == "sample" else self._ddpm.get_velocity(latents, noise, t)
        return F.mse_loss(pred, target)

    @torch.no_grad()
    def generate(self, prompts: list[str], steps: int = 25, guidance: float = 3.0, seed: int = 0, eta: float = 1.0,
                 device: str | torch.device | None = None) -> torch.Tensor:  # fmt: skip
        """Images of ``prompts``, (B, 3, R, R) float32 in [0, 1] on the CPU: DDIM in ``steps`` steps from latent
        noise drawn on the CPU with ``seed`` (and so is each step's noise when ``eta`` > 0), classifier-free
        guidance ``guidance`` against the empty prompt (1.0: none), then the VAE decoder."""
        from diffusers import DDIMScheduler

        scheduler = DDIMScheduler.from_config(self.scheduler_config, clip_sample=False)  # latents are not in [-1, 1]
        if not 1 <= steps <= scheduler.config.num_train_timesteps:
            raise ValueError(f"steps must be in 1..{scheduler.config.num_train_timesteps}, got {steps}")
        if device is not None:
            self.to(device)
        device, side = self.device, self.config.resolution // self.vae_scale_factor
        was_training = self.training
        self.eval()
        try:
            cond = self.encode_prompts(prompts).hidden_states
            b, guided = cond.shape[0], guidance != 1.0
            if guided:
                cond = torch.cat([self._empty(b), cond])
            generator = torch.Generator().manual_seed(seed)  # on the CPU: the same noise on any device
            x = torch.randn((b, self.unet.config.in_channels, side, side), generator=generator).to(device)
            x = x * scheduler.init_noise_sigma
            scheduler.set_timesteps(steps, device=device)
            for t in scheduler.timesteps:
                pred = self._predict(scheduler.scale_model_input(torch.cat([x, x]) if guided else x, t), t, cond)
                if guided:
                    uncond, conditional = pred.chunk(2)
                    pred = uncond + guidance * (conditional - uncond)
                x = scheduler.step(pred, t, x, eta=eta, generator=generator).prev_sample
            with autocast_for(device):
                images = self.vae.decode(x / self.vae.config.scaling_factor).sample.float()
        finally:
            self.train(was_training)
        return ((images.clamp(-1, 1) + 1) / 2).cpu()


def load_text_to_image(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """A saved text-to-image model by its config.json's model_type: ``diffusion`` (the pixel-space
    `models.diffusion.TextToImage`) or ``diffusion_sd`` (:class:`StableDiffusionModel`)."""
    from models.diffusion import TextToImage

    model_type = _read_config(Path(path)).get("model_type")
    classes = {TextToImage.model_type: TextToImage, StableDiffusionModel.model_type: StableDiffusionModel}
    if model_type not in classes:
        raise ValueError(f"{path}: model_type {model_type!r} is not a text-to-image model ({', '.join(classes)})")
    return classes[model_type].from_pretrained(path, device=device)


__all__ = ["LORA_TARGETS", "SDConfig", "StableDiffusionModel", "base_digest", "check_sd_base", "load_base", "load_text_to_image"]
