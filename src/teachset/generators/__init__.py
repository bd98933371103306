"""Generators: the protocol (base), the CPU-trainable autoencoder, a 2x upsampling stage on a trained one, the
conditional GAN, external TorchScript modules, checkpoints, training, quality and inversion."""

from .base import Generator
from .checkpoint import bundled_generators, load_generator, read_meta, save_generator

__all__ = ["Generator", "bundled_generators", "load_generator", "read_meta", "save_generator"]
