"""The display resolution of a study, a recorded choice: the working size, a larger fixed size (every
stimulus written at it, enlarged smoothly), or the originals where every condition has them; one
resolution for every condition unless mixing is asked for explicitly; the CSS size the pages give
every image. Chromium at 256 px: test_study_browser.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from teachset.errors import OptionError
from teachset.study.create import create_study


def sizes(design) -> set[tuple[int, int]]:
    return {Image.open(path).size for path in design.stimulus_files().values()}


def make_large_study(pair_study, root: Path, size: int = 256):
    """pair_study's teaching set (32 px working size) with 4 test images, all shown at `size` px."""
    return create_study("Large", pair_study.dataset["spec"]["source"],
                        [("A", pair_study.path / pair_study.conditions[0].folder)], out=root / "study", display=size,
                        test_images=4, seed=4)


def generated_set(pair_study, folder: Path) -> Path:
    """A generated teaching set of pair_study's dataset: noise, 2 per class."""
    from teachset.teaching_set import TeachingSet

    real = TeachingSet.load(pair_study.path / pair_study.conditions[0].folder)
    images = np.random.default_rng(0).random((4, 1, 32, 32), dtype=np.float32)
    TeachingSet.generated(images, [0, 0, 1, 1], real.class_names, real.dataset, "latent", {}, 0).save(folder)
    return folder


def test_a_study_at_256_px_writes_every_stimulus_at_it_and_records_the_choice(pair_study, tmp_path):
    design = make_large_study(pair_study, tmp_path)
    assert sizes(design) == {(256, 256)} and design.image_size == 256
    display = json.loads((design.path / "study.json").read_text())["display"]
    assert display == {"mode": "size", "size": 256, "working_size": 32, "largest_original": None, "css_px": 256,
                       "resample": "bicubic to enlarge, Lanczos to reduce", "mixed": False, "conditions": {"A": 256}}
    # enlarged smoothly from the working-size image: reduced again, it is the image the proxies saw
    teach = design.conditions[0].teach[0]
    working = np.asarray(Image.open(pair_study.path / "stimuli" / f"{pair_study.conditions[0].teach[0].token}.png"))
    large = Image.open(design.path / "stimuli" / f"{teach.token}.png")
    assert len(np.unique(np.asarray(large))) > len(np.unique(working))  # not blocks of equal pixels
    assert np.abs(np.asarray(large.resize((32, 32), Image.Resampling.BOX), dtype=float) - working).mean() < 6


def test_the_pages_give_every_image_the_display_size(pair_study, serve_study, tmp_path):
    design = make_large_study(pair_study, tmp_path)
    live = serve_study(design, f"sqlite:///{tmp_path / 'responses.sqlite'}")
    css = live.client().get("/static/study.css").body.decode()
    assert css.rstrip().endswith(":root { --image: clamp(120px, 44vw, 256px); }")
    plain = serve_study(pair_study, f"sqlite:///{tmp_path / 'plain.sqlite'}")
    assert plain.client().get("/static/study.css").body.decode().rstrip().endswith("44vw, 200px); }")


def test_originals_are_shown_where_every_condition_has_them(pair_study, tmp_path):
    source_set = pair_study.path / pair_study.conditions[0].folder
    design = create_study("Originals", pair_study.dataset["spec"]["source"], [("A", source_set)], out=tmp_path / "study",
                          display="original", test_images=4, seed=4)
    assert sizes(design) == {(8, 8)}  # the dataset's files are 8 px; the working size is 32
    display = json.loads((design.path / "study.json").read_text())["display"]
    assert (display["mode"], display["size"], display["largest_original"], display["css_px"]) == ("original", None, 8, 200)
    assert design.image_size == 8  # small: the pages scale them up with hard pixel edges
    assert len(list((design.path / "conditions" / "A" / "originals").rglob("*.png"))) == 4  # exported into the copy
    assert not (source_set / "originals").exists()  # never into the set it was given


def test_originals_are_refused_for_a_generated_set_and_mixing_needs_the_flag(pair_study, tmp_path):
    source = pair_study.dataset["spec"]["source"]
    conditions = [("real", pair_study.path / pair_study.conditions[0].folder),
                  ("gen", generated_set(pair_study, tmp_path / "gen"))]

    def refusal(option: str, **kwargs) -> str:
        with pytest.raises(OptionError) as caught:
            create_study("Mixed", source, conditions, out=tmp_path / "refused", test_images=4, **kwargs)
        assert caught.value.option == option and "\n" not in str(caught.value)
        return str(caught.value)

    assert "condition 'gen' has no originals" in refusal("display", display="original")
    assert "would be shown at the original resolution and the rest at 256 px" in refusal(
        "mixed_display", display=["256", "real=original"])
    assert "below the working size 32 px" in refusal("display", display=16)
    assert "is not working, original or a size" in refusal("display", display="big")
    assert "given twice" in refusal("display", display=["256", "512"])
    assert "names condition 'other'" in refusal("display", display=["other=256"], mixed_display=True)

    design = create_study("Mixed", source, conditions, out=tmp_path / "mixed", display=["256", "gen=working"],
                          mixed_display=True, test_images=4, seed=4)
    display = json.loads((design.path / "study.json").read_text())["display"]
    assert display["mixed"] and display["conditions"] == {"real": 256, "gen": "working"}
    assert any("condition 'gen' is shown at the working size, the test images at 256 px" in n for n in design.notes)
    gen, real = design.condition("gen"), design.condition("real")
    assert {Image.open(design.path / "stimuli" / f"{s.token}.png").size for s in gen.teach} == {(32, 32)}
    assert {Image.open(design.path / "stimuli" / f"{s.token}.png").size for s in real.teach + design.test_pool} == {(256, 256)}


def test_the_command_line_takes_the_display(pair_study, tmp_path, capsys):
    from teachset.cli import main

    base = ["study", "create", "--name", "Large", "--dataset", pair_study.dataset["spec"]["source"],
            "--condition", f"A={pair_study.path / pair_study.conditions[0].folder}", "--test-images", "4"]
    assert main(base + ["--display", "A=original", "--out", str(tmp_path / "mixed")]) == 2
    assert "unless --mixed-display is given" in capsys.readouterr().err
    assert main(base + ["--display", "128", "--out", str(tmp_path / "ok")]) == 0
    assert "all shown at 128 px" in capsys.readouterr().out
