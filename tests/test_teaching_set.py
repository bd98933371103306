import json

import numpy as np
import pytest
from PIL import Image

from teachset.errors import TeachsetError
from teachset.teaching_set import META_FILE, TeachingSet


def _generated(channels=3):
    rng = np.random.default_rng(0)
    return TeachingSet(images=rng.integers(0, 256, (4, channels, 8, 8), dtype=np.uint8), labels=np.array([0, 0, 1, 1]),
                       class_names=["a/b", "c d"], method="latent-lc", params={"lr": 0.1}, seed=3,
                       dataset={"name": "x", "fingerprint": "f", "spec": {}},
                       latents=rng.normal(size=(4, 5)).astype(np.float32))


@pytest.mark.parametrize("channels", [1, 3])
def test_round_trip_keeps_pixels_labels_latents_and_metadata(tmp_path, channels):
    ts = _generated(channels)
    folder = ts.save(tmp_path / "set")
    meta = json.loads((folder / META_FILE).read_text())
    assert meta["items"][0]["file"].startswith("images/a_b/") and "latent" in meta["items"][0]
    loaded = TeachingSet.load(folder)
    assert np.array_equal(loaded.images, ts.images) and np.array_equal(loaded.labels, ts.labels)
    np.testing.assert_allclose(loaded.latents, ts.latents, rtol=1e-6)
    assert loaded.class_names == ts.class_names and loaded.params == {"lr": 0.1} and loaded.seed == 3
    assert loaded.source_ids is None and loaded.per_class() == [[0, 1], [2, 3]]


def test_existing_folder_is_kept_unless_overwrite(tmp_path):
    ts = _generated()
    ts.save(tmp_path / "set")
    with pytest.raises(TeachsetError, match="already exists.*--overwrite"):
        ts.save(tmp_path / "set")
    ts.save(tmp_path / "set", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]  # no temporary folders left


def test_a_failed_save_leaves_nothing_half_written(tmp_path, monkeypatch):
    ts = _generated()
    ts.save(tmp_path / "set")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    original, calls = Image.Image.save, []

    def disk_full_on_every_third_image(self, *args, **kwargs):
        calls.append(1)
        if len(calls) % 3 == 0:
            raise OSError("No space left on device")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", disk_full_on_every_third_image)
    with pytest.raises(OSError):
        _generated(channels=1).save(tmp_path / "set", overwrite=True)
    with pytest.raises(OSError):
        ts.save(tmp_path / "other")
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # old set intact, nothing else
    assert TeachingSet.load(tmp_path / "set").images.shape[1] == 3


def test_load_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(TeachsetError, match="not a teaching set"):
        TeachingSet.load(tmp_path)
    folder = _generated().save(tmp_path / "set")
    next(folder.rglob("*.png")).unlink()
    with pytest.raises(TeachsetError, match="cannot be read"):
        TeachingSet.load(folder)
    (folder / META_FILE).write_text("{")
    with pytest.raises(TeachsetError, match="not valid JSON"):
        TeachingSet.load(folder)


def test_a_selected_set_exports_its_originals_at_their_own_resolution(tmp_path):
    from teachset.data import load_dataset
    from teachset.methods import TeachingData, make_method

    root = tmp_path / "images"
    for name, level in (("bright", 200), ("dark", 50)):
        for i in range(4):
            (root / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((90, 60), level + i, np.uint8)).save(root / name / f"{i}.png")
    dataset = load_dataset(str(root), image_size=16)
    ts = make_method("random").make(TeachingData(dataset, dataset.tensor().flatten(1).numpy(), "pixels"), per_class=2)
    ts.save(tmp_path / "set")
    folder = TeachingSet.load(tmp_path / "set").export_originals()
    files = TeachingSet.load(tmp_path / "set").original_files()
    assert len(files) == 4 and all(f.parent.parent == folder for f in files)
    with Image.open(files[0]) as original:
        assert original.size == (60, 90)  # the file's own size, not the working 16 px
        assert abs(np.asarray(original).mean() - ts.images[0].mean()) < 2  # the same scaling
    digits = load_dataset("digits", image_size=32)
    small = make_method("random").make(TeachingData(digits, digits.tensor().flatten(1).numpy(), "pixels"), per_class=1)
    small.save(tmp_path / "digits")
    TeachingSet.load(tmp_path / "digits").export_originals()
    with Image.open(TeachingSet.load(tmp_path / "digits").original_files()[0]) as original:
        assert original.size == (8, 8)  # a bundled dataset's original array
