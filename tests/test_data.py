import numpy as np
import pytest
import tifffile

from image_files import write_image
from teachset.data import BUNDLED, load_dataset
from teachset.data import bundled
from teachset.errors import TeachsetError


def test_folder_dataset_classes_labels_and_range(image_folder):
    d = load_dataset(str(image_folder), image_size=16)
    assert d.class_names == ["bright", "dark"]
    assert d.images.shape == (12, 1, 16, 16) and d.images.dtype == np.uint8
    x = d.tensor()
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert x[d.labels == 0].mean() > 0.6 > 0.3 > x[d.labels == 1].mean()
    assert d.ids[0] == "bright/0.png" and d.spec["image_size"] == 16


def test_mixed_sizes_and_modes_become_one_rgb_shape(tmp_path):
    rng = np.random.default_rng(1)
    write_image(tmp_path / "a" / "gray.png", rng.integers(0, 255, (30, 40), dtype=np.uint8))
    write_image(tmp_path / "a" / "rgba.png", rng.integers(0, 255, (12, 12, 4), dtype=np.uint8))
    write_image(tmp_path / "b" / "rgb.jpg", rng.integers(0, 255, (50, 20, 3), dtype=np.uint8))
    write_image(tmp_path / "b" / "sixteen.png", rng.integers(0, 65535, (25, 25), dtype=np.uint16))
    d = load_dataset(str(tmp_path), image_size=24)
    assert d.images.shape == (4, 3, 24, 24)
    assert len(d) == 4


def test_csv_manifest_with_groups_and_relative_paths(image_folder, tmp_path):
    manifest = tmp_path / "m.csv"
    lines = ["path,label,group"] + [f"{p.relative_to(tmp_path)},{p.parent.name},g{i % 2}"
                                    for i, p in enumerate(sorted(image_folder.rglob("*.png")))]
    manifest.write_text("\n".join(lines) + "\n")
    d = load_dataset(str(manifest), image_size=16)
    assert len(d) == 12 and d.groups[:2] == ["g0", "g1"]


def test_csv_manifest_missing_column_says_which(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("file,label\na.png,x\n")
    with pytest.raises(TeachsetError, match="lacks column.*path.*header"):
        load_dataset(str(manifest))


@pytest.mark.parametrize("layout,message", [
    ({}, "no class sub-folders"),
    ({"only": 3}, "single class"),
    ({"a": 3, "b": 0}, r"class folder\(s\) \['b'\].*no images"),
])
def test_bad_folders_get_one_line_messages(tmp_path, layout, message):
    for name, count in layout.items():
        (tmp_path / name).mkdir()
        for i in range(count):
            write_image(tmp_path / name / f"{i}.png", np.full((8, 8), 100, np.uint8))
    with pytest.raises(TeachsetError, match=message) as info:
        load_dataset(str(tmp_path))
    assert "\n" not in str(info.value)


def test_corrupt_files_are_named_or_skipped_and_reported(image_folder):
    bad = image_folder / "dark" / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(TeachsetError, match="broken.png.*--skip-bad"):
        load_dataset(str(image_folder), image_size=16)
    d = load_dataset(str(image_folder), image_size=16, skip_bad=True)
    assert len(d) == 12 and [p for p, _ in d.skipped] == [str(bad)]


def test_too_few_per_class_and_missing_source():
    d = load_dataset("digits", image_size=8)
    with pytest.raises(TeachsetError, match="fewer than the 500 per class"):
        d.check_per_class(500)
    with pytest.raises(TeachsetError, match="neither a bundled dataset"):
        load_dataset("no/such/place")


def test_multichannel_tiff_channel_mapping_is_applied_and_recorded(tmp_path):
    for cls, bright_channel in (("dna", 0), ("actin", 2)):
        (tmp_path / cls).mkdir()
        for i in range(3):
            stack = np.zeros((3, 16, 16), np.uint16)
            stack[bright_channel] = 4000 + 10 * i
            tifffile.imwrite(tmp_path / cls / f"{i}.tif", stack)
    d = load_dataset(str(tmp_path), image_size=16, channels="2,1,0")  # R <- channel 2, B <- channel 0
    assert d.info["channel_to_rgb"] == [2, 1, 0]
    assert "per_channel_range" in str(d.info["intensity"])
    dna = d.tensor()[np.array(d.class_names)[d.labels] == "dna"].mean(dim=(0, 2, 3))
    actin = d.tensor()[np.array(d.class_names)[d.labels] == "actin"].mean(dim=(0, 2, 3))
    assert dna[2] > 0.9 and dna[0] < 0.1  # channel 0 (DNA) landed in blue
    assert actin[0] > 0.9 and actin[2] < 0.1
    with pytest.raises(TeachsetError, match="could not be read"):
        load_dataset(str(tmp_path), channels="5,1,0")
    with pytest.raises(TeachsetError, match="channel numbers"):
        load_dataset(str(tmp_path), channels="r,g,b")


def test_fingerprint_is_a_content_hash(image_folder):
    a = load_dataset(str(image_folder), image_size=16)
    b = load_dataset(str(image_folder), image_size=16)
    assert a.fingerprint == b.fingerprint
    assert load_dataset(str(image_folder), image_size=20).fingerprint != a.fingerprint
    write_image(image_folder / "dark" / "0.png", np.zeros((20, 20), np.uint8))
    assert load_dataset(str(image_folder), image_size=16).fingerprint != a.fingerprint


def test_bundled_datasets_load_offline():
    digits = load_dataset("digits", image_size=16)
    assert len(digits) == 1797 and digits.num_classes == 10
    mnist = load_dataset("mnist", image_size=28)
    assert len(mnist) == 5000 and mnist.class_counts()["7"] == 500


def test_fashion_mnist_missing_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(bundled, "FASHION_MNIST_DIR", tmp_path)
    assert not BUNDLED["fashion-mnist"].available()
    with pytest.raises(TeachsetError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist")


@pytest.mark.slow
def test_elpv_two_classes_by_documented_rule():
    d = load_dataset("elpv", image_size=32)
    assert d.class_counts() == {"defective": 821, "functional": 1508}
    assert set(d.groups) == {"mono", "poly"}
    assert "2/3" in d.info["label_rule"]


def test_held_out_split_is_stratified_seeded_and_spread_over_few_groups():
    from teachset.data.splits import Split, split_dataset

    d = load_dataset("elpv", image_size=16)
    parts = split_dataset(d, Split())
    assert len(parts.train) + len(parts.test) == len(d) and not set(parts.train.ids) & set(parts.test.ids)
    for c in range(2):  # each class and each cell type (two groups: too few to hold out whole) near 20%
        for g in ("mono", "poly"):
            n = sum(1 for y, h in zip(d.labels, d.groups) if y == c and h == g)
            n_test = sum(1 for y, h in zip(parts.test.labels, parts.test.groups) if y == c and h == g)
            assert abs(n_test - 0.2 * n) <= 2
    assert parts.test.split["by"] == "class, spread over groups" and parts.test.split["part"] == "test"
    assert parts.train.record()["fingerprint"] == d.fingerprint != parts.train.fingerprint
    assert np.array_equal(split_dataset(d, Split()).test_index, parts.test_index)
    assert not np.array_equal(split_dataset(d, Split(split_seed=1)).test_index, parts.test_index)
    paper = split_dataset(d, Split(protocol="paper"))
    assert paper.train is d and paper.test is d


def test_many_groups_are_held_out_whole():
    from teachset.data.splits import Split

    labels = np.repeat([0, 1], 100)
    groups = [f"plate{i % 20}" for i in range(200)]
    train, test, by = Split().indices(labels, groups, ["a", "b"])
    assert by == "group" and not {groups[i] for i in train} & {groups[i] for i in test}
    assert 0.1 < len(test) / 200 < 0.3


def test_a_split_that_empties_a_class_says_which():
    from teachset.data.splits import Split

    with pytest.raises(TeachsetError, match="class 'b' has 0 train and 1 test"):
        Split().indices(np.array([0] * 10 + [1]), None, ["a", "b"])


def test_keeping_some_classes_in_a_chosen_order(image_folder):
    d = load_dataset("digits", image_size=8, classes="3,8")
    assert d.class_names == ["3", "8"] and set(d.labels) == {0, 1} and d.spec["classes"] == ["3", "8"]
    f = load_dataset(str(image_folder), image_size=8, classes=["dark", "bright"])
    assert f.class_names == ["dark", "bright"] and f.images[f.labels == 0].mean() < f.images[f.labels == 1].mean()
    with pytest.raises(TeachsetError, match=r"\['cat'\] are not in the dataset"):
        load_dataset("digits", image_size=8, classes="3,cat")


def test_decoded_datasets_are_cached_and_a_changed_file_invalidates_them(image_folder):
    first = load_dataset(str(image_folder), image_size=16)
    again = load_dataset(str(image_folder), image_size=16)
    assert isinstance(again.images, np.memmap) and np.array_equal(again.images, first.images)
    assert again.fingerprint == first.fingerprint and again.ids == first.ids and again.class_names == first.class_names
    write_image(image_folder / "dark" / "0.png", np.full((20, 20), 255, np.uint8))  # modified
    changed = load_dataset(str(image_folder), image_size=16)
    assert changed.fingerprint != first.fingerprint and changed.images[changed.ids.index("dark/0.png")].min() == 255
    write_image(image_folder / "dark" / "new.png", np.full((20, 20), 30, np.uint8))  # added
    assert len(load_dataset(str(image_folder), image_size=16)) == len(first) + 1
    (image_folder / "bright" / "1.png").unlink()  # removed
    assert len(load_dataset(str(image_folder), image_size=16)) == len(first)
