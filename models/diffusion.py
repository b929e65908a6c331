"""``diffusion``: a small text-to-image model, pixel-space DDPM with classifier-free guidance.

- :class:`TextToImage`: a diffusers ``UNet2DConditionModel`` (3 channels in and out; images in
  [-1, 1] inside, [0, 1] at the interface) cross-attending to the ``last_hidden_state`` of a
  *frozen* transformers ``CLIPTextModel`` and its tokenizer (:mod:`models.clip_text`), copied
  from a ``clip`` model (:meth:`TextToImage.from_clip`) or random (:meth:`TextToImage.from_tokenizer`).
- Training: :meth:`TextToImage.loss`, DDPM's MSE (diffusers ``DDPMScheduler``), each condition
  dropped to all-zero hidden states with probability ``cond_dropout`` (classifier-free guidance's
  unconditional input; no learned null token). Only the UNet trains; :func:`ema_update` for an EMA.
- Sampling: :meth:`TextToImage.generate`, DDIM (diffusers ``DDIMScheduler``, eta 1 by default:
  the deterministic eta 0 left high-frequency noise in the backgrounds of a small, briefly trained
  UNet that the stochastic steps remove) from a
  seeded ``torch.Generator``: the same seed gives the same images exactly (on one device).
- :func:`check_sd_checkpoint`: what a local Stable Diffusion directory (diffusers layout) must hold.

Prompts are padded to ``config.max_length`` (as Stable Diffusion pads to 77): a prompt's condition
does not depend on its batch; longer ones are truncated and counted. ``save_pretrained`` writes
config.json (with the text tower's ``CLIPTextConfig``) + model.safetensors (UNet and text tower) +
the tokenizer files. diffusers and transformers are imported where used (diffusers takes seconds).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from models.clip_text import load_tokenizer
from models.pretrained import ModelFileError, PretrainedMixin, autocast_for

if TYPE_CHECKING:
    from models.clip import ClipEmbedder

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
SD_FILES = ("model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json", "tokenizer/",
            "scheduler/scheduler_config.json")  # fmt: skip
SD_UNET_WEIGHTS = ("unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.bin")


@dataclass
class DiffusionConfig:
    resolution: int = 32  # image side in pixels (square, pixel space: no VAE); a multiple of 2**(len(block_channels)-1), at least twice that
    block_channels: tuple[int, ...] = (32, 64, 64)  # UNet widths per resolution level; the first level has no attention, the others cross-attend to the text
    layers_per_block: int = 1  # resnet (+ transformer) layers per down block (up blocks get one more, as in diffusers)
    attention_head_dim: int = 8  # channels per attention head (heads = width // this; diffusers' own `attention_head_dim` is a head *count*)
    cross_attention_dim: int = 128  # width of the text hidden states = the text tower's hidden size
    train_timesteps: int = 1000  # DDPM diffusion steps in training
    beta_schedule: str = "squaredcos_cap_v2"  # DDPM noise schedule: linear, scaled_linear or squaredcos_cap_v2 (cosine, suits small pixel-space images)
    prediction_type: str = "v_prediction"  # what the UNet predicts: v_prediction (as SD 2), epsilon (the noise; with the cosine schedule it shifted every image's colours: sample background 131 RGB units off vs 28) or sample
    max_length: int = 32  # prompt tokens (padded to this, longer prompts truncated); at most the text tower's position limit
    text_model: str | None = None  # provenance: the clip model the text tower came from, e.g. "clip v1 (/path)"; None = a random text tower
    text_hf_config: dict | None = None  # the text tower's transformers CLIPTextConfig as a dict (what from_pretrained rebuilds)
    tokenizer: str = "words"  # the text tower's tokenizer: "words" (vocab.json) or "clip" (a checkpoint's BPE files)

    def __post_init__(self):
        self.block_channels = tuple(int(c) for c in self.block_channels)
        if not self.block_channels or min(self.block_channels) <= 0:
            raise ValueError(f"block_channels needs at least one positive width, got {self.block_channels}")
        if any(c % self.attention_head_dim for c in self.block_channels):
            raise ValueError(f"every block_channels width must be a multiple of attention_head_dim "
                             f"{self.attention_head_dim}, got {self.block_channels}")  # fmt: skip
        factor = 2 ** (len(self.block_channels) - 1)  # the UNet halves the image once per level but the last
        if self.resolution % factor or self.resolution < 2 * factor:
            raise ValueError(f"resolution {self.resolution} does not fit block_channels {self.block_channels}: the UNet halves the "
                             f"image {len(self.block_channels) - 1} times, so the resolution must be a multiple of {factor} and at "
                             f"least {2 * factor} (e.g. {2 * factor}, {4 * factor}, {8 * factor})")  # fmt: skip
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"unknown beta_schedule {self.beta_schedule!r}: one of {', '.join(BETA_SCHEDULES)}")
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"unknown prediction_type {self.prediction_type!r}: one of {', '.join(PREDICTION_TYPES)}")
        if self.max_length < 2 or self.train_timesteps < 2 or self.layers_per_block < 1:
            raise ValueError("max_length and train_timesteps must be at least 2, layers_per_block at least 1")

    @property
    def norm_groups(self) -> int:
        """GroupNorm groups of the UNet: 32 as in Stable Diffusion, fewer when a width is not a multiple."""
        return math.gcd(32, *self.block_channels)

    def scheduler_kwargs(self) -> dict:
        return {"num_train_timesteps": self.train_timesteps, "beta_schedule": self.beta_schedule, "prediction_type": self.prediction_type}


class EncodedPrompts(NamedTuple):
    hidden_states: torch.Tensor  # (B, max_length, cross_attention_dim) float32: the text tower's last_hidden_state
    attention_mask: torch.Tensor  # (B, max_length) long, 1 on real tokens
    n_truncated: int  # prompts cut at max_length


def build_unet(config: DiffusionConfig) -> nn.Module:
    """The diffusers ``UNet2DConditionModel`` of ``config`` (random init)."""
    from diffusers import UNet2DConditionModel

    n = len(config.block_channels)
    down = ("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1)  # no attention at full resolution (cost ~ R**4)
    up = ("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",)
    heads = tuple(c // config.attention_head_dim for c in config.block_channels)  # diffusers' "attention_head_dim" = heads
    return UNet2DConditionModel(
        sample_size=config.resolution, in_channels=3, out_channels=3, down_block_types=down, up_block_types=up,
        mid_block_type="UNetMidBlock2DCrossAttn", block_out_channels=config.block_channels,
        layers_per_block=config.layers_per_block, attention_head_dim=heads, norm_num_groups=config.norm_groups,
        cross_attention_dim=config.cross_attention_dim,
    )  # fmt: skip


def _json(data: dict) -> dict:
    return json.loads(json.dumps(data, default=str))


class UNetTraining:
    """What the two text-to-image models (:class:`TextToImage`, `models.diffusion_sd.StableDiffusionModel`)
    share around their ``unet``: the checks of a training batch and an EMA of the UNet's weights."""

    def _encoded_batch(self, images: torch.Tensor, prompts) -> EncodedPrompts:
        """``prompts`` encoded (or as given, already encoded), after checking ``images`` is (B, 3, R, R) at the
        model's resolution with one prompt per image."""
        size = self.config.resolution
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, size, size):
            raise ValueError(f"images must be (B, 3, {size}, {size}), got {tuple(images.shape)}")
        enc = prompts if isinstance(prompts, EncodedPrompts) else self.encode_prompts(prompts)
        if enc.hidden_states.shape[0] != images.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {enc.hidden_states.shape[0]} prompts")
        return enc

    def add_ema(self) -> None:
        """A frozen copy of the UNet, ``ema_unet``, averaged by :meth:`update_ema`. It is part of the state
        dict while training (the loop's checkpoint keeps it, a resumed run continues it) and never
        trained (not in ``trainable_parameters``, no gradient); :meth:`keep_ema` ends it."""
        self.ema_unet = copy.deepcopy(self.unet).requires_grad_(False)

    def update_ema(self, decay: float, step: int) -> None:
        """``ema = d * ema + (1 - d) * unet`` with ``d = min(decay, (1 + step) / (10 + step))`` (the warm-up
        diffusers' EMAModel uses: early averages do not hold on to the random init)."""
        ema_update(self.ema_unet, self.unet, min(decay, (1 + step) / (10 + step)))

    @contextmanager
    def ema_weights(self) -> Iterator[None]:
        """The EMA weights in place of the UNet's inside the block (e.g. to evaluate them)."""
        self.unet, self.ema_unet = self.ema_unet, self.unet
        try:
            yield
        finally:
            self.unet, self.ema_unet = self.ema_unet, self.unet

    def keep_ema(self) -> None:
        """The UNet takes the EMA weights and the copy is dropped (what is saved is the average)."""
        self.unet.load_state_dict(self.ema_unet.state_dict())
        del self.ema_unet


class TextToImage(UNetTraining, PretrainedMixin, nn.Module):
    """UNet + frozen CLIP text tower + its tokenizer (see the module docstring)."""

    model_type = "diffusion"
    config_class = DiffusionConfig

    def __init__(self, config: DiffusionConfig, tokenizer=None):
        super().__init__()
        from transformers import CLIPTextConfig, CLIPTextModel

        if config.text_hf_config is None:
            raise ValueError("DiffusionConfig.text_hf_config is None: build a TextToImage with from_clip or from_tokenizer")
        text_config = CLIPTextConfig.from_dict(config.text_hf_config)
        if text_config.hidden_size != config.cross_attention_dim:
            raise ValueError(f"cross_attention_dim {config.cross_attention_dim} differs from the text tower's width "
                             f"{text_config.hidden_size}")  # fmt: skip
        if config.max_length > text_config.max_position_embeddings:
            raise ValueError(f"max_length {config.max_length} is over the text tower's position limit "
                             f"{text_config.max_position_embeddings}")  # fmt: skip
        self.config = config
        self.unet = build_unet(config)
        self.text_encoder = CLIPTextModel(text_config)
        self.tokenizer = tokenizer
        self._freeze_text()

    def _freeze_text(self) -> None:
        self.text_encoder.requires_grad_(False).eval()

    def init_constants(self) -> None:
        """The text tower's ``position_ids`` (non-persistent) after a load on the meta device."""
        for module in self.text_encoder.modules():
            ids = module._buffers.get("position_ids")
            if ids is not None and ids.is_meta:
                module.register_buffer("position_ids", torch.arange(ids.shape[-1]).expand(ids.shape), persistent=False)

    def train(self, mode: bool = True):
        """As ``nn.Module.train``, but the frozen text tower stays in eval mode."""
        super().train(mode)
        self.text_encoder.eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What the optimizer gets: the UNet's parameters (never the text tower's)."""
        return list(self.unet.parameters())

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    # -- construction ----------------------------------------------------------------------------

    @classmethod
    def from_clip(cls, clip_model: ClipEmbedder, config: DiffusionConfig, provenance: str) -> TextToImage:
        """A new model (random UNet) with a copy of ``clip_model``'s text tower and tokenizer.
        ``cross_attention_dim`` is set to the tower's width, ``max_length`` capped at its position
        limit, ``text_model`` to ``provenance``."""
        if clip_model.tokenizer is None:
            raise ValueError("this clip model has no tokenizer (load it with from_pretrained)")
        text = clip_model.clip.config.text_config
        config = dataclasses.replace(
            config, cross_attention_dim=text.hidden_size, max_length=min(config.max_length, text.max_position_embeddings),
            text_model=provenance, text_hf_config=_json(text.to_dict()), tokenizer=clip_model.tokenizer.kind,
        )  # fmt: skip
        model = cls(config, clip_model.tokenizer)
        # CLIPModel.text_model is a CLIPTextModel in transformers 5; in 4 a CLIPTextTransformer, CLIPTextModel.text_model
        getattr(model.text_encoder, "text_model", model.text_encoder).load_state_dict(clip_model.clip.text_model.state_dict())
        return model.to(next(clip_model.parameters()).device)

    @classmethod
    def from_tokenizer(cls, tokenizer, config: DiffusionConfig, text_layers: int = 2, text_heads: int = 4) -> TextToImage:
        """A new model with a random text tower (``config.cross_attention_dim`` wide) over ``tokenizer``."""
        from transformers import CLIPTextConfig

        width = config.cross_attention_dim
        text = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=width, intermediate_size=4 * width,
                              num_hidden_layers=text_layers, num_attention_heads=text_heads,
                              max_position_embeddings=config.max_length, pad_token_id=tokenizer.pad_token_id,
                              bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)  # fmt: skip
        config = dataclasses.replace(config, text_model=None, text_hf_config=_json(text.to_dict()), tokenizer=tokenizer.kind)
        return cls(config, tokenizer)

    # -- text ------------------------------------------------------------------------------------

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> EncodedPrompts:
        """The frozen text tower's ``last_hidden_state`` of ``prompts`` padded to ``max_length``. An empty
        prompt is a ValueError naming its position; longer ones are truncated, counted in ``n_truncated``."""
        if self.tokenizer is None:
            raise ValueError("this diffusion model has no tokenizer (load it with from_pretrained)")
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts:
            raise ValueError("no prompts: give at least one")
        tokens = self.tokenizer(prompts, self.config.max_length)
        pad = self.config.max_length - tokens.input_ids.shape[1]
        ids = F.pad(tokens.input_ids, (0, pad), value=self.tokenizer.pad_token_id).to(self.device)
        mask = F.pad(tokens.attention_mask, (0, pad), value=0).to(self.device)
        hidden = self.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        return EncodedPrompts(hidden.float(), mask, tokens.n_truncated)

    # -- training --------------------------------------------------------------------------------

    def _predict(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        with autocast_for(x.device):  # bf16 on CUDA, float32 on CPU
            return self.unet(x, t, encoder_hidden_states=cond).sample.float()

    def loss(self, images: torch.Tensor, prompts: list[str] | EncodedPrompts, generator: torch.Generator | None = None,
             cond_dropout: float = 0.1) -> torch.Tensor:  # fmt: skip
        """DDPM's MSE of the UNet's prediction (``prediction_type``) at random timesteps for ``images``
        (B, 3, R, R) in [0, 1] and their prompts (or their :meth:`encode_prompts`); each condition dropped to
        zeros with probability ``cond_dropout``. Noise, timesteps and dropout come from ``generator``."""
        from diffusers import DDPMScheduler

        device = self.device
        enc = self._encoded_batch(images, prompts)
        b = images.shape[0]
        if not hasattr(self, "_ddpm"):
            self._ddpm = DDPMScheduler(**self.config.scheduler_kwargs())
        at = generator.device if generator is not None else device
        noise = torch.randn(images.shape, generator=generator, device=at).to(device)
        t = torch.randint(0, self.config.train_timesteps, (b,), generator=generator, device=at).to(device)
        drop = (torch.rand(b, generator=generator, device=at) < cond_dropout).to(device)
        cond = torch.where(drop[:, None, None], torch.zeros_like(enc.hidden_states), enc.hidden_states.to(device))
        x0 = images.to(device, torch.float32) * 2 - 1
        pred = self._predict(self._ddpm.add_noise(x0, noise, t), t, cond)
        kind = self.config.prediction_type
        target = noise if kind == "epsilon" else x0 if kind == "sample" else self._ddpm.get_velocity(x0, noise, t)
        return F.mse_loss(pred, target)

    # -- sampling --------------------------------------------------------------------------------

    @torch.no_grad()
    def generate(self, prompts: list[str], steps: int = 25, guidance: float = 3.0, seed: int = 0, eta: float = 1.0,
                 device: str | torch.device | None = None) -> torch.Tensor:  # fmt: skip
        """Images of ``prompts``, (B, 3, R, R) float32 in [0, 1] on the CPU: DDIM in ``steps`` steps from noise
        drawn with ``seed`` (and so is each step's noise when ``eta`` > 0: eta 0 is deterministic DDIM, 1 as
        noisy as DDPM), classifier-free guidance ``guidance`` (1.0: no unconditional pass). ``device``:
        where to run (the model moves there; None: where it is). Eval mode during the call (restored after)."""
        from diffusers import DDIMScheduler

        if not 1 <= steps <= self.config.train_timesteps:
            raise ValueError(f"steps must be in 1..{self.config.train_timesteps}, got {steps}")
        if device is not None:
            self.to(device)
        device, size = self.device, self.config.resolution
        was_training = self.training
        self.eval()
        try:
            cond = self.encode_prompts(prompts).hidden_states
            guided = guidance != 1.0
            if guided:
                cond = torch.cat([torch.zeros_like(cond), cond])
            generator = torch.Generator().manual_seed(seed)  # on the CPU: the same noise on any device
            x = torch.randn((cond.shape[0] // (2 if guided else 1), 3, size, size), generator=generator).to(device)
            scheduler = DDIMScheduler(**self.config.scheduler_kwargs())
            scheduler.set_timesteps(steps, device=device)
            for t in scheduler.timesteps:
                pred = self._predict(torch.cat([x, x]) if guided else x, t, cond)
                if guided:
                    uncond, conditional = pred.chunk(2)
                    pred = uncond + guidance * (conditional - uncond)
                x = scheduler.step(pred, t, x, eta=eta, generator=generator).prev_sample
        finally:
            self.train(was_training)
        return ((x.clamp(-1, 1) + 1) / 2).float().cpu()

    # -- save / load -----------------------------------------------------------------------------

    def save_extra(self, directory: Path) -> None:
        if self.tokenizer is not None:
            self.tokenizer.save(directory)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: str | torch.device = "cpu") -> TextToImage:
        model = super().from_pretrained(directory, device=device)
        model.tokenizer = load_tokenizer(directory, model.config.tokenizer)
        model._freeze_text()
        return model


@torch.no_grad()
def ema_update(ema_model: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * model`` over the UNets' parameters (of two :class:`TextToImage`
    or two UNets); buffers are copied."""
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"decay must be in [0, 1], got {decay}")
    ema, src = getattr(ema_model, "unet", ema_model), getattr(model, "unet", model)
    params = dict(src.named_parameters())
    for name, p in ema.named_parameters():
        p.lerp_(params[name].detach().to(p.device, p.dtype), 1.0 - decay)
    buffers = dict(src.named_buffers())
    for name, b in ema.named_buffers():
        b.copy_(buffers[name])


def check_sd_checkpoint(directory: str | os.PathLike) -> None:
    """A local Stable Diffusion directory in diffusers layout, or a :class:`ModelFileError` naming the first missing
    file (``model_index.json``, unet / vae / text_encoder / scheduler configs, ``tokenizer/``, the UNet's weights)."""
    directory = Path(directory)
    fix = "give a complete Stable Diffusion directory in diffusers layout (as StableDiffusionPipeline.save_pretrained writes)"
    if not directory.is_dir():
        raise ModelFileError(directory, "not a directory", fix)
    for name in SD_FILES:
        path = directory / name
        if not (path.is_dir() if name.endswith("/") else path.is_file()):
            raise ModelFileError(path, "missing" + (" (a folder)" if name.endswith("/") else ""), fix)
    if not any((directory / name).is_file() for name in SD_UNET_WEIGHTS):
        raise ModelFileError(directory / SD_UNET_WEIGHTS[0], f"missing (the UNet's weights; or {Path(SD_UNET_WEIGHTS[1]).name})", fix)
