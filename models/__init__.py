"""models: nn.Modules, their config dataclasses, save/load and the one training loop.

No I/O beyond checkpoints; imports neither ``store`` nor ``flows``: callers hand over tensors,
datasets and loaders. A trained model lives in ``<home>/models/<name>/<version>/`` as
``config.json`` (config dataclass + ``model_type``), ``model.safetensors`` and ``metrics.json``.

- ``resnet``: :class:`ResNetEmbedder` / :class:`ResNetConfig` (resnet18 trunk, 128-d embedding,
  category head); :meth:`ResNetEmbedder.load_backbone_weights` for local torchvision weights.
- ``ae``: :class:`ConvAutoencoder` / :class:`AutoencoderConfig` (128-d bottleneck, 1 - SSIM).
- ``loop``: the one training loop of every kind, :func:`fit` of a :class:`Task` under a
  :class:`TrainConfig` (schedule :func:`lr_at`, checkpoints and resume, keep-best on disk, early
  stopping, one metrics schema); each kind's ``train_*`` function is a thin wrapper over it.
- training: :func:`train_classifier`, :func:`train_autoencoder` (``models.train``).
- inference: :func:`embed_batch` (channels_last, inference_mode, bf16 on CUDA, float32 numpy).
- ``clip``: :class:`ClipEmbedder` / :class:`ClipConfig` (transformers CLIPModel, a local
  checkpoint or a small one from scratch; tokenizers in ``models.clip_text``); fine-tuning and
  R@K in ``models.clip_train``.
- ``attributes``: :class:`AttributeClassifier` / :class:`AttributeConfig` (resnet18, one head per
  attribute, missing as its own class); training in ``models.attributes_train``.
- ``siamese``: :class:`SiameseEncoder` / :class:`SiameseConfig` (structure embedding: a twin or a
  dual-branch photo / line-drawing pair of resnet18 encoders); training in ``models.siamese_train``.
- ``umbert`` / ``wumbert``: :class:`UmBERT` / :class:`WumBERT` / :class:`OutfitConfig` (transformer
  over an outfit's item vectors, learned mask token and category embedding); training and
  inference in ``models.outfit_train`` (:func:`train_outfit_model`, :func:`predict_missing`).
"""

from models.ae import AutoencoderConfig, ConvAutoencoder, resolve_loss
from models.attributes import AttributeClassifier, AttributeConfig
from models.clip import ClipConfig, ClipEmbedder, NotAClipCheckpoint
from models.loop import Task, TrainConfig, fit, load_checkpoint, lr_at, resume_from_checkpoint, save_checkpoint
from models.outfit import OutfitConfig, UmBERT, WumBERT
from models.outfit_train import OutfitData, predict_missing, train_outfit_model
from models.pretrained import (
    MODEL_TYPES,
    PretrainedMixin,
    default_device,
    embed_batch,
    load_pretrained,
    read_metrics,
)
from models.resnet import ResNetConfig, ResNetEmbedder
from models.siamese import SiameseConfig, SiameseEncoder
from models.train import evaluate_autoencoder, evaluate_classifier, train_autoencoder, train_classifier

__all__ = [
    "AttributeClassifier",
    "AttributeConfig",
    "ClipConfig",
    "ClipEmbedder",
    "NotAClipCheckpoint",
    "SiameseConfig",
    "SiameseEncoder",
    "MODEL_TYPES",
    "OutfitConfig",
    "OutfitData",
    "UmBERT",
    "WumBERT",
    "predict_missing",
    "train_outfit_model",
    "AutoencoderConfig",
    "ConvAutoencoder",
    "PretrainedMixin",
    "ResNetConfig",
    "ResNetEmbedder",
    "Task",
    "TrainConfig",
    "default_device",
    "embed_batch",
    "evaluate_autoencoder",
    "evaluate_classifier",
    "fit",
    "load_checkpoint",
    "load_pretrained",
    "lr_at",
    "read_metrics",
    "resolve_loss",
    "resume_from_checkpoint",
    "save_checkpoint",
    "train_autoencoder",
    "train_classifier",
]
