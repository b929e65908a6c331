"""``atelier train diffusion --weights DIR [--lora-rank R]`` on a tiny Stable Diffusion checkpoint
built here with diffusers' own classes (no download): train through the recipe, save, load, the
same images for the same seed, LoRA saving only its adapter, refusals naming the file or base."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers import one_torch_thread

from flows.jobs.ingest import ingest
from flows.jobs.train import train_model
from models.diffusion_sd import StableDiffusionModel, load_text_to_image
from models.pretrained import ModelFileError

one_thread = pytest.fixture(scope="module", autouse=True)(one_torch_thread)

SD_TINY = {"steps": 2, "eval_every": 2, "batch_size": 4, "resolution": 16, "eval_images": 4, "sample_steps": 2, "lr": 1e-3}


def tiny_sd_checkpoint(folder: Path) -> Path:
    """A Stable Diffusion directory as ``StableDiffusionPipeline.save_pretrained`` writes one, at toy
    sizes: UNet (16, 32) with cross-attention on its second level, a 2-level VAE (pixel factor 2 x 2 = 4),
    a 1-layer CLIP text encoder over a character-level BPE vocabulary (16 tokens), DDPM scheduler."""
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    words = folder.parent / f"{folder.name}_vocab"
    words.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in "abcdefghijklmnopqrstuvwxyz0123456789-,.'":
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    (words / "vocab.json").write_text(json.dumps(vocab))
    (words / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(words / "vocab.json"), str(words / "merges.txt"), model_max_length=16)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(16, 32), layers_per_block=1,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16,
                                attention_head_dim=2, norm_num_groups=8)  # fmt: skip
    vae = AutoencoderKL(in_channels=3, out_channels=3, block_out_channels=(8, 16), latent_channels=4, norm_num_groups=8,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, sample_size=16)  # fmt: skip
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, max_position_embeddings=16, bos_token_id=0, eos_token_id=1,
                                        pad_token_id=1))  # fmt: skip
    scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False, steps_offset=1)
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text, tokenizer=tokenizer, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)  # fmt: skip
    pipe.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory) -> Path:
    return tiny_sd_checkpoint(tmp_path_factory.mktemp("sd") / "tiny-sd")


@pytest.fixture(scope="module")
def sd_home(sample_root, tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("diffusion_sd") / "home"
    ingest("synthesis", sample_root / "synthesis", home)
    return home


@pytest.fixture(scope="module")
def full(sd_home, sd_dir):
    lines: list[str] = []
    return train_model("diffusion", sd_home, **SD_TINY, weights=sd_dir, log=lines.append), lines


@pytest.fixture(scope="module")
def lora(sd_home, sd_dir, full):
    lines: list[str] = []
    return train_model("diffusion", sd_home, **SD_TINY, weights=sd_dir, lora_rank=2, ema=0.9, log=lines.append), lines


def _weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_full_fine_tune_trains_through_the_recipe_and_reloads_to_the_same_images(full, sd_dir):
    result, lines = full
    m = result.metrics
    base = str(sd_dir.resolve())
    assert m["weights"] == str(sd_dir) and m["trained_on"]["base_checkpoint"] == base and m["trained_on"]["lora_rank"] is None
    assert m["base"]["checkpoint"] == base and m["base"]["lora_rank"] is None
    assert m["base"]["parameters"]["trainable"] == m["base"]["parameters"]["unet"]
    assert m["text_model"] == f"text_encoder of {base}" and m["steps"] == 2
    assert any(line.startswith(f"base: Stable Diffusion checkpoint {base}; the whole UNet trains") for line in lines)
    assert m["val_scores"]["n_images"] == 4 and set(m["val_scores"]["faithfulness"]["colour"]) == {"generated", "real", "shuffled"}
    config = json.loads((result.path / "config.json").read_text())
    assert config["model_type"] == "diffusion_sd" and config["base"] == base and config["lora_rank"] is None
    state = _weights(result.path)  # the UNet only: the frozen VAE and text encoder stay in the base
    assert all(k.startswith("unet.") for k in state) and sum(v.numel() for v in state.values()) == m["base"]["parameters"]["unet"]
    loaded = load_text_to_image(result.path)
    assert isinstance(loaded, StableDiffusionModel) and not loaded.training and not loaded.vae.training
    prompts = ["a red long-sleeved dress", "blue shirt"]
    images = result.model.generate(prompts, steps=2, seed=3)
    assert images.shape == (2, 3, 16, 16) and images.dtype == torch.float32 and 0 <= images.min() and images.max() <= 1
    assert torch.equal(images, loaded.generate(prompts, steps=2, seed=3))
    assert not torch.equal(images, loaded.generate(prompts, steps=2, seed=4))
    assert not torch.equal(images, loaded.base_copy().generate(prompts, steps=2, seed=3))  # fine-tuning changed the UNet


def test_lora_saves_only_the_adapter_and_reloads_to_the_same_images(lora, full):
    result, lines = lora
    m = result.metrics
    assert m["trained_on"]["lora_rank"] == 2 and m["base"]["lora_rank"] == 2 and result.version == "v2" and m["ema"] == 0.9
    assert not hasattr(result.model, "ema_unet")  # the average was kept (of the adapter) and the copy dropped
    n = m["base"]["parameters"]
    assert 0 < n["trainable"] < n["unet"] / 10
    assert any(f"LoRA rank 2 on its attention projections: {n['trainable']:,} trainable" in line for line in lines)
    state = _weights(result.path)
    assert state and all(k.startswith("unet.") and ".lora_" in k for k in state)
    assert sum(v.numel() for v in state.values()) == n["trainable"]
    assert (result.path / "model.safetensors").stat().st_size < (full[0].path / "model.safetensors").stat().st_size / 10
    loaded = load_text_to_image(result.path)
    assert loaded.config.lora_rank == 2 and [p.numel() for p in loaded.trainable_parameters()] == [
        p.numel() for p in result.model.trainable_parameters()]
    prompts = ["a red long-sleeved dress"]
    images = result.model.generate(prompts, steps=2, seed=5)
    assert torch.equal(images, loaded.generate(prompts, steps=2, seed=5))
    assert not torch.equal(images, loaded.base_copy().generate(prompts, steps=2, seed=5))  # the adapter is not a no-op


def test_generate_and_eval_load_the_stable_diffusion_model(sd_home, lora):
    from flows.evaluation import evaluate_kind
    from flows.jobs.generate import load_diffusion

    net, path = load_diffusion(sd_home)
    assert isinstance(net, StableDiffusionModel) and path == lora[0].path
    held = evaluate_kind("diffusion", sd_home, split="test", report=False, log=lambda _: None)["held_out"]
    assert held["split"] == "test" and held["scores"]["n_images"] == 4


def test_a_missing_file_is_refused_naming_it(sd_home, sd_dir, tmp_path):
    broken = Path(shutil.copytree(sd_dir, tmp_path / "broken"))
    (broken / "vae" / "config.json").unlink()
    with pytest.raises(ModelFileError, match=r"broken/vae/config.json: missing"):
        train_model("diffusion", sd_home, **SD_TINY, weights=broken, log=lambda _: None)
    shutil.copy(sd_dir / "vae" / "config.json", broken / "vae" / "config.json")
    (broken / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ModelFileError, match=r"broken/unet/diffusion_pytorch_model.safetensors: missing \(the UNet's weights"):
        StableDiffusionModel.from_base(broken, 16)


def test_resolution_and_lora_options_are_checked_before_training(sd_home, sd_dir):
    with pytest.raises(ValueError, match="resolution 18 does not fit .* multiple of 4"):
        train_model("diffusion", sd_home, **{**SD_TINY, "resolution": 18}, weights=sd_dir, log=lambda _: None)
    with pytest.raises(ValueError, match="--lora-rank 4: .* with --weights"):
        train_model("diffusion", sd_home, **SD_TINY, lora_rank=4, text="random", log=lambda _: None)


def test_a_gone_or_changed_base_is_a_clear_error_at_load(sd_dir, tmp_path):
    base = Path(shutil.copytree(sd_dir, tmp_path / "base"))
    torch.manual_seed(0)
    model = StableDiffusionModel.from_base(base, 16, lora_rank=2)
    model.save_pretrained(tmp_path / "m")
    assert load_text_to_image(tmp_path / "m").config.base == str(base.resolve())
    weights = base / "text_encoder" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)  # other weights, same size
    with pytest.raises(ModelFileError, match=rf"{base}: its weight files are not the ones this model was fine-tuned from"):
        load_text_to_image(tmp_path / "m")
    shutil.rmtree(base)
    with pytest.raises(ModelFileError, match=rf"{base}: the base Stable Diffusion checkpoint this model was fine-tuned from is gone"):
        load_text_to_image(tmp_path / "m")


def test_eval_command_scores_on_inception_weights_beside_the_base(sd_home, lora, tmp_path):
    from test_inception import random_inception
    from typer.testing import CliRunner

    from flows.cli import app

    weights = random_inception(tmp_path / "pt_inception-random.pth", 1008)
    res = CliRunner().invoke(app, ["eval", "diffusion", "--inception-weights", str(weights), "--no-report", "--no-prefect",
                                   "--home", str(sd_home)])  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads((sd_home / "reports" / "eval_diffusion.json").read_text())["held_out"]["scores"]
    inception = report["inception"]
    assert inception["name"] == "FID Inception-v3 (TF 2015-12-05 weights, pt_inception-random.pth)"
    assert set(inception["scores"]) == {"generated", "untrained", "base", "real", "real half vs half (floor)"}
    assert "features" not in report  # the resnet-feature block is its own (the home has no resnet)
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(ModelFileError, match="junk.pth"):  # refused before any training
        train_model("diffusion", sd_home, **SD_TINY, weights=lora[0].metrics["weights"], inception_weights=tmp_path / "junk.pth",
                    log=lambda _: None)
