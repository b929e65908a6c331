"""Trainable parameters and training-state memory of `atelier train diffusion --weights DIR`, full
fine-tune vs ``--lora-rank R``, computed for Stable Diffusion 1.5's shapes; writes JSON.

    python bench/bench_sd_lora.py [--out bench/results/sd_lora.json] [--ranks 4 8 16]

No weights are read or downloaded: SD 1.5's UNet (its published config: 320/640/1280/1280 channels,
2 layers per block, 8 heads, 768-d cross-attention), VAE and CLIP ViT-L/14 text encoder are built
on PyTorch's meta device, and the LoRA adapter is added the way `models.diffusion_sd` adds it
(peft ``LoraConfig`` on ``LORA_TARGETS``). Memory of the training state (weights, gradients, AdamW's
two moments), float32 weights as the loop keeps them: a trained tensor costs 16 bytes a parameter,
a frozen one 4. Activations are left out (they depend on batch size and resolution; bf16 autocast
on GPU). Saved model.safetensors size: float32, the trained tensors only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from benchutil import write_results

ROOT = Path(__file__).resolve().parents[1]
SD15_UNET = {"sample_size": 64, "in_channels": 4, "out_channels": 4, "layers_per_block": 2, "block_out_channels": (320, 640, 1280, 1280),
             "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
             "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, "cross_attention_dim": 768, "attention_head_dim": 8}
SD15_VAE = {"in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2, "block_out_channels": (128, 256, 512, 512),
            "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4, "sample_size": 512}
SD15_TEXT = {"vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
             "max_position_embeddings": 77, "hidden_act": "quick_gelu"}  # fmt: skip
GB = 1e9


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "sd_lora.json")
    parser.add_argument("--ranks", type=int, nargs="+", default=[4, 8, 16])
    args = parser.parse_args()

    from diffusers import AutoencoderKL, UNet2DConditionModel
    from peft import LoraConfig
    from transformers import CLIPTextConfig, CLIPTextModel

    from models.diffusion_sd import LORA_TARGETS

    with torch.device("meta"):
        unet_n = count(UNet2DConditionModel(**SD15_UNET))
        frozen = count(AutoencoderKL(**SD15_VAE)) + count(CLIPTextModel(CLIPTextConfig(**SD15_TEXT)))
        rows = {"full": {"trainable": unet_n, "state_gb": (16 * unet_n + 4 * frozen) / GB, "saved_gb": 4 * unet_n / GB}}
        for rank in args.ranks:
            unet = UNet2DConditionModel(**SD15_UNET).requires_grad_(False)
            unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=list(LORA_TARGETS)))
            lora = sum(p.numel() for p in unet.parameters() if p.requires_grad)
            rows[f"lora_rank_{rank}"] = {"trainable": lora, "share_of_unet": lora / unet_n,
                                         "state_gb": (16 * lora + 4 * (unet_n + frozen)) / GB, "saved_gb": 4 * lora / GB}  # fmt: skip
    write_results(args.out, {"model": "Stable Diffusion 1.5 shapes (meta device, no weights)", "unet_parameters": unet_n,
                             "frozen_vae_and_text_parameters": frozen, "lora_targets": list(LORA_TARGETS),
                             "bytes_per_parameter": {"trained (fp32 weight + grad + AdamW m, v)": 16, "frozen (fp32 weight)": 4},
                             "activations": "not included", "arms": rows})  # fmt: skip


if __name__ == "__main__":
    main()
