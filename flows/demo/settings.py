"""How big the demo's runs are (small: the demo is a tour, not a benchmark). No heavy imports:
the CLI reads these defaults to build `atelier demo --help`."""

from __future__ import annotations

from dataclasses import dataclass

DEMO_SPACES = ("resnet", "ae")  # the image spaces the demo trains, embeds and analyses first
DEMO_WHERE = "dataset = 'polyvore'"  # neighbours with titles (DeepFashion images have none)
OUTFIT_KINDS = ("umbert", "wumbert")
RESEARCH_KINDS = ("clip", "attributes", "siamese", "extractor", "diffusion")


@dataclass(frozen=True)
class DemoSettings:
    resnet_steps: int = 40  # reaches ~0.9 held-out category accuracy on the samples (majority class 0.12)
    ae_steps: int = 100  # val SSIM ~0.04 above the mean-image baseline (0.38) on the samples
    image_size: int = 64  # model input side, px (the sample images are 128 px)
    batch_size: int = 32  # images per training step
    seed: int = 0  # split, init and shuffle seed
    k: int = 10  # neighbours shown per space
    outfit_space: str = "ae"  # space umBERT/WumBERT read item vectors from (ae measured better than resnet for style, README)
    outfit_steps: int = 1000  # umBERT/WumBERT steps (~15 s each on 2 CPU cores)
    outfit_variant: str = "nondisjoint"  # Polyvore variant the outfit models train and are scored on

    def options(self, kind: str) -> dict:
        """The training options the demo gives ``kind`` (resnet, ae, umbert, wumbert)."""
        if kind in OUTFIT_KINDS:
            return {"steps": self.outfit_steps, "space": self.outfit_space, "variant": self.outfit_variant, "seed": self.seed}
        steps = {"resnet": self.resnet_steps, "ae": self.ae_steps}[kind]
        return {"steps": steps, "image_size": self.image_size, "batch_size": self.batch_size, "seed": self.seed}


@dataclass(frozen=True)
class ResearchSettings:
    clip_steps: int = 150  # clip from scratch: held-out text->image R@10 ~0.95 vs 0.22 random (README)
    attribute_steps: int = 150  # attribute heads: well above the majority class on neck and sleeve
    siamese_steps: int = 150  # siamese encoder on the DeepFashion2 shop x user pairs
    extractor_steps: int = 60  # garment extractor (UNet correcting the copy-paste, 128 x 96): val SSIM 0.68 vs copy-paste 0.64, paired interval above 0 at seeds 0-2 (~35 s)
    extractor_batch_size: int = 8  # half the kind's 16 at twice its lr: the same val SSIM as 120 steps of 16 in a quarter of the time (chosen on val)
    extractor_lr: float = 6e-4  # see extractor_batch_size
    diffusion_steps: int = 200  # text-to-image from scratch, 16 px: the val captions' colour read back well above shuffled-prompt chance (bench/results/demo_quality.json); 300 does better (bench/results/diffusion_quality.json) but took the demo past 7 min
    diffusion_resolution: int = 16  # its image side, px: 32 px is ~4x slower per step (the kind's default, for longer runs)
    diffusion_lr: float = 1e-3  # twice the kind's 5e-4: a short run (chosen on val, bench/results/diffusion_quality.json)
    siamese_mode: str = "color_mask_crop"  # trained with recolouring augmentation; separates from its untrained twin on held-out recolourings (bench/results/structure_scale4.json), grayscale_mask does not
    image_size: int = 64  # input side, px, of all three
    seed: int = 0  # splits, init and shuffles
    k: int = 5  # search results shown

    def options(self, kind: str) -> dict:
        """The training options the demo gives ``kind`` (clip, attributes, siamese, extractor, diffusion)."""
        if kind == "extractor":  # its own image size: the sample persons' 128 x 96
            return {"steps": self.extractor_steps, "batch_size": self.extractor_batch_size, "lr": self.extractor_lr,
                    "seed": self.seed}  # fmt: skip
        if kind == "diffusion":  # the home's clip text tower (trained just before), val captions scored after
            return {"steps": self.diffusion_steps, "resolution": self.diffusion_resolution, "lr": self.diffusion_lr,
                    "seed": self.seed}  # fmt: skip
        steps = {"clip": self.clip_steps, "attributes": self.attribute_steps, "siamese": self.siamese_steps}[kind]
        extra = {"mode": self.siamese_mode} if kind == "siamese" else {}
        return {"steps": steps, "image_size": self.image_size, "seed": self.seed, **extra}
