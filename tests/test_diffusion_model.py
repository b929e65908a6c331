"""diffusion: the text-to-image model core (UNet + frozen CLIP text tower), tiny and on the CPU."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import one_torch_thread

from models.clip import ClipConfig, ClipEmbedder
from models.clip_text import WordTokenizer
from models.diffusion import DiffusionConfig, TextToImage, check_sd_checkpoint, ema_update
from models.pretrained import ModelFileError, load_pretrained

CAPTIONS = ["a red shirt", "blue long sleeve dress", "a green striped skirt", "black denim jacket"]


one_thread = pytest.fixture(scope="module", autouse=True)(one_torch_thread)


def tiny_config(**changes) -> DiffusionConfig:
    return DiffusionConfig(**{"resolution": 16, "block_channels": (16, 32), "attention_head_dim": 8,
                              "cross_attention_dim": 32, "max_length": 8, **changes})  # fmt: skip


def tiny_model(**changes) -> TextToImage:
    torch.manual_seed(0)
    return TextToImage.from_tokenizer(WordTokenizer.build(CAPTIONS), tiny_config(**changes), text_layers=1, text_heads=2)


def batch() -> torch.Tensor:
    """Four flat-coloured 16 px images with a darker square: something a UNet can fit."""
    images = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.2, 0.9], [0.1, 0.8, 0.2], [0.1, 0.1, 0.1]]).view(4, 3, 1, 1)
    images = images.expand(4, 3, 16, 16).clone()
    images[:, :, 4:12, 4:12] *= 0.5
    return images


def test_save_load_generates_the_same_images(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path / "m")
    assert {p.name for p in (tmp_path / "m").iterdir()} == {"config.json", "model.safetensors", "vocab.json"}
    loaded = load_pretrained(tmp_path / "m")
    assert isinstance(loaded, TextToImage)
    assert loaded.config == model.config and loaded.config.block_channels == (16, 32)
    prompts = ["a red shirt", "blue dress"]
    images = model.generate(prompts, steps=3, seed=7)
    assert images.shape == (2, 3, 16, 16) and images.dtype == torch.float32
    assert 0 <= images.min() and images.max() <= 1
    assert torch.equal(images, loaded.generate(prompts, steps=3, seed=7))
    assert torch.equal(images, model.generate(prompts, steps=3, seed=7))
    assert not torch.equal(images, loaded.generate(prompts, steps=3, seed=8))
    assert not torch.equal(images, loaded.generate(prompts, steps=3, seed=7, guidance=1.0))  # no unconditional pass
    assert not loaded.training and not loaded.text_encoder.training


def test_loss_is_finite_and_falls_with_training():
    model = tiny_model()
    model.train()
    images, prompts = batch(), CAPTIONS
    encoded = model.encode_prompts(prompts)  # the frozen tower's output can be computed once
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(30):
        loss = model.loss(images, encoded, generator, cond_dropout=0.1)
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.7 * first, losses  # v-prediction: 0.50-0.53 of the first losses after 30 steps (seeds 0-2)
    assert torch.isfinite(model.loss(images, prompts, generator))  # prompts as strings too


def test_only_the_unet_trains():
    model = tiny_model()
    model.train()
    assert not model.text_encoder.training  # train() keeps the frozen tower in eval mode
    trainable = {id(p) for p in model.trainable_parameters()}
    assert trainable == {id(p) for p in model.unet.parameters()}
    assert not trainable & {id(p) for p in model.text_encoder.parameters()}
    assert not any(p.requires_grad for p in model.text_encoder.parameters())
    text_before = copy.deepcopy(model.text_encoder.state_dict())
    unet_before = copy.deepcopy(model.unet.state_dict())
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-3)
    model.loss(batch(), CAPTIONS, torch.Generator().manual_seed(1), cond_dropout=0.0).backward()
    optimizer.step()
    assert all(torch.equal(v, model.text_encoder.state_dict()[k]) for k, v in text_before.items())
    assert any(not torch.equal(v, model.unet.state_dict()[k]) for k, v in unet_before.items())


def test_ema_update():
    model = tiny_model()
    ema = copy.deepcopy(model)
    start = model.unet.conv_in.weight.detach().clone()
    with torch.no_grad():
        for p in model.unet.parameters():
            p.add_(1.0)
    ema_update(ema, model, decay=1.0)  # keeps the average
    assert torch.equal(ema.unet.conv_in.weight, start)
    ema_update(ema, model, decay=0.75)
    assert torch.allclose(ema.unet.conv_in.weight, start + 0.25, atol=1e-6)
    with pytest.raises(ValueError, match="decay"):
        ema_update(ema, model, decay=1.5)


def test_prompts_empty_and_too_long():
    model = tiny_model()
    with pytest.raises(ValueError, match="text 1 is empty"):
        model.encode_prompts(["a red shirt", "  ", "blue dress"])
    with pytest.raises(ValueError, match="text 1 is empty"):
        model.generate(["a red shirt", ""], steps=1)
    long = "a red shirt with blue long sleeve dress and a green striped skirt"  # 13 words + bos/eos > 8
    hidden, mask, n_truncated = model.encode_prompts([long, "a red shirt"])
    assert n_truncated == 1
    assert hidden.shape == (2, 8, 32) and mask.shape == (2, 8)
    assert mask[0].sum() == 8 and mask[1].sum() == 5  # bos a red shirt eos, then padding to max_length
    alone = model.encode_prompts(["a red shirt"]).hidden_states  # a prompt's condition ignores its batch
    assert torch.allclose(alone[0], hidden[1], atol=1e-6)


def test_resolution_the_unet_cannot_take():
    with pytest.raises(ValueError, match=r"resolution 18 .*multiple of 4"):
        DiffusionConfig(resolution=18, block_channels=(16, 32, 32))
    with pytest.raises(ValueError, match=r"resolution 4 .*at least 8"):
        DiffusionConfig(resolution=4, block_channels=(16, 32, 32))
    with pytest.raises(ValueError, match="attention_head_dim"):
        DiffusionConfig(block_channels=(12, 24))
    DiffusionConfig(resolution=24, block_channels=(16, 32, 32))  # a multiple of 4: fine
    model = tiny_model()
    with pytest.raises(ValueError, match=r"\(B, 3, 16, 16\)"):
        model.loss(torch.rand(2, 3, 32, 32), CAPTIONS[:2])


def test_check_sd_checkpoint_names_the_missing_file(tmp_path):
    sd = tmp_path / "sd"
    with pytest.raises(ModelFileError, match="not a directory"):
        check_sd_checkpoint(sd)
    sd.mkdir()
    steps = ["model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json", "tokenizer",
             "scheduler/scheduler_config.json", "unet/diffusion_pytorch_model.safetensors"]  # fmt: skip
    for name in steps:
        with pytest.raises(ModelFileError) as error:
            check_sd_checkpoint(sd)
        assert error.value.path == sd / name and "missing" in str(error.value)
        if name == "tokenizer":
            (sd / name).write_text("")  # a file where the folder should be is still missing
            with pytest.raises(ModelFileError, match="tokenizer"):
                check_sd_checkpoint(sd)
            (sd / name).unlink()
            (sd / name).mkdir()
        else:
            (sd / name).parent.mkdir(parents=True, exist_ok=True)
            (sd / name).write_text("{}")
    check_sd_checkpoint(sd)
    (sd / steps[-1]).unlink()
    (sd / "unet/diffusion_pytorch_model.bin").write_bytes(b"")
    check_sd_checkpoint(sd)  # .bin weights do too


def test_from_clip_copies_the_text_tower(tmp_path):
    torch.manual_seed(0)
    tokenizer = WordTokenizer.build(CAPTIONS)
    clip = ClipEmbedder(ClipConfig(vocab_size=len(tokenizer), image_size=32, vision_layers=1, text_layers=1,
                                   text_width=64, heads=2, max_length=8), tokenizer).eval()  # fmt: skip
    model = TextToImage.from_clip(clip, tiny_config(cross_attention_dim=128, max_length=32), "clip v1 (/somewhere)")
    assert model.config.cross_attention_dim == 64 and model.config.max_length == 8  # the tower's width and limit
    assert model.config.text_model == "clip v1 (/somewhere)" and model.tokenizer is tokenizer
    prompts = ["a red shirt", "black denim jacket with stripes"]
    tokens = clip.tokenize(prompts)
    pad = 8 - tokens.input_ids.shape[1]
    ids = torch.nn.functional.pad(tokens.input_ids, (0, pad), value=tokenizer.pad_token_id)
    mask = torch.nn.functional.pad(tokens.attention_mask, (0, pad), value=0)
    with torch.no_grad():
        expected = clip.clip.text_model(input_ids=ids, attention_mask=mask).last_hidden_state
    hidden, got_mask, _ = model.encode_prompts(prompts)
    assert torch.equal(got_mask, mask)
    assert torch.allclose(hidden, expected, atol=1e-6)
    model.save_pretrained(tmp_path / "m")
    loaded = TextToImage.from_pretrained(tmp_path / "m")
    assert loaded.config.text_model == "clip v1 (/somewhere)"
    assert torch.allclose(loaded.encode_prompts(prompts).hidden_states, expected, atol=1e-6)
    assert not any(p.requires_grad for p in loaded.text_encoder.parameters())
