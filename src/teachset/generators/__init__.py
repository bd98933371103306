"""Generators: the protocol, the CPU-trainable autoencoder, external TorchScript modules, quality and inversion."""

from .base import Generator, load_generator, save_generator

__all__ = ["Generator", "load_generator", "save_generator"]
