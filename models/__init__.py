"""models: nn.Modules, their config dataclasses, save/load and training loops.

No I/O beyond checkpoints; imports neither ``store`` nor ``flows``. The models arrive with the
issues that need them (embeddings, outfit completion, attributes, extractor, diffusion).
"""
