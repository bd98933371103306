"""Where and in which precision a generator trains: device and precision names resolved (with
one-line errors for what is not here), and the backend settings a training run uses."""

from __future__ import annotations

from contextlib import contextmanager

import torch

from ..errors import OptionError

PRECISIONS = ("auto", "fp32", "bf16")


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """"auto": the GPU where CUDA has one, else the CPU; "cpu", "cuda", "cuda:N" as asked, if present."""
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        shown = str(name).replace("{", "{{").replace("}", "}}")  # the message is a template
        raise OptionError("device", f"unknown device '{shown}': {{option}} takes auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise OptionError("device", f"device '{name}' is not available here (CUDA GPUs: {torch.cuda.device_count()}); use {{option}} cpu")
    if device.type not in ("cpu", "cuda"):
        raise OptionError("device", f"device '{name}' is not supported: {{option}} takes auto, cpu, cuda or cuda:N")
    return device


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bfloat16 in hardware (emulated bfloat16 is slower than float32)."""
    return any(getattr(torch.cpu, name, lambda: False)() for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def resolve_precision(name: str, device: torch.device) -> str:
    """"auto": bf16 (autocast) on a CPU with native bfloat16, else fp32 (with TF32 matmuls on a GPU)."""
    if name == "auto":
        return "bf16" if device.type == "cpu" and native_bf16_cpu() else "fp32"
    if name not in PRECISIONS:
        shown = str(name).replace("{", "{{").replace("}", "}}")
        raise OptionError("precision", f"unknown precision '{shown}': {{option}} takes auto, fp32 or bf16")
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise OptionError("precision", "this GPU has no bfloat16; use {option} fp32")
    return name


@contextmanager
def training_backend(device: torch.device):
    """On a GPU, for the duration of a training run: cuDNN picks its fastest kernels for the fixed
    shapes once, and float32 matmuls may use TF32. The global settings are restored afterwards."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.benchmark = torch.backends.cuda.matmul.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32 = saved
