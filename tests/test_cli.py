import json

import pytest

from teachset.cli import build_parser, main


def test_every_command_has_worked_examples(capsys):
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert {"datasets", "features", "select", "evaluate", "report", "demo"} <= set(commands)
    for name, sub in commands.items():
        assert "examples:" in sub.format_help() and f"teachset {name}" in sub.format_help(), name


def test_select_evaluate_report_on_a_user_folder(image_folder, tmp_path, capsys):
    out = tmp_path / "set"
    assert main(["select", str(image_folder), "--size", "16", "--method", "medoids", "--per-class", "2",
                 "--extractor", "pixels", "--out", str(out)]) == 0
    assert main(["evaluate", str(out), "--extractor", "pixels", "--repeats", "2", "--out", str(tmp_path / "runs")]) == 0
    printed = capsys.readouterr().out
    assert "medoids" in printed and "LC (95% CI)" in printed and "NN vgg16 (95% CI)" in printed
    run = next((tmp_path / "runs").iterdir())
    results = json.loads((run / "results.json").read_text())
    # LC and NN on the pixels and on the transfer extractor, 2 repeats each, scored on the held-out images only
    assert len(results["rows"]) == 8 and results["summary"][0]["n"] == 2
    assert {r["n_test"] for r in results["rows"]} == {2} and not any(r["own"] for r in results["rows"])
    assert (run / "results.csv").read_text().startswith("method,teaching_set,set_seed,student,extractor,own")
    (scores,) = results["realism"]["images"].values()
    assert len(scores) == 4 and {"label_probability", "nearest_ratio", "density_ratio"} <= set(scores[0])
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert page.count("data:image/png;base64") == 4 and "<svg" in page and "bright" in page
    assert "real held-out images (reference)" in page and page.count("<figcaption") == 4
    # the display resolution a user picks: 64 px enlarged from the 16 px working size, or the originals
    assert main(["report", str(run), "--display", "64", "--out", str(tmp_path / "report-64.html")]) == 0
    assert image_sizes((tmp_path / "report-64.html").read_text()) == [(64, 64)] * 4
    assert main(["report", str(run), "--display", "original", "--out", str(tmp_path / "bad.html")]) == 2
    err = capsys.readouterr().err
    assert "--display original: the set 'medoids (seed 0)' has no originals" in err and err.count("\n") == 1
    assert main(["report", str(run), "--display", "8", "--out", str(tmp_path / "bad.html")]) == 2
    assert "--display 8 is below the working size 16 px" in capsys.readouterr().err and not (tmp_path / "bad.html").exists()
    from teachset.teaching_set import TeachingSet

    TeachingSet.load(out).export_originals()
    assert main(["report", str(run), "--display", "original", "--out", str(tmp_path / "original.html")]) == 0
    assert image_sizes((tmp_path / "original.html").read_text()) == [(20, 20)] * 4  # the files' own size, not 16 px


def image_sizes(page: str) -> list[tuple[int, int]]:
    """The sizes of a report's teaching images (the PNGs in its figures)."""
    import base64
    import io
    import re

    from PIL import Image

    return [Image.open(io.BytesIO(base64.b64decode(data))).size
            for data in re.findall(r'<figure><img src="data:image/png;base64,([^"]+)"', page)]


def test_user_errors_are_one_line_without_traceback(tmp_path, capsys):
    assert main(["select", str(tmp_path / "nowhere"), "--method", "random"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("teachset: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "not a teaching set" in capsys.readouterr().err
    assert main(["select", "digits", "--method", "forgetting", "--param", "nonsense"]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err
    runs = tmp_path / "runs"
    for bad, says in ((["--latent-dim", "100"], "code grid of 8 does not fit"), (["--code-grid", "32"], "code grid of 32"),
                      (["--prior-bandwidth", "-1"], "--prior-bandwidth must be at least 0"), (["--size", "24"], "power-of-two sizes")):
        assert main(["generator", "train", "digits", "--size", "32", "--steps", "1", *bad, "--out", str(runs)]) == 2
        assert says in capsys.readouterr().err and not runs.exists()  # refused before a run folder is made


def test_datasets_and_extractors_are_listed(capsys):
    assert main(["datasets"]) == 0 and main(["features", "--list"]) == 0
    out = capsys.readouterr().out
    assert "elpv" in out and "2/3" in out and "mobilenet_v2" in out and "scattering" in out


def test_the_command_is_recorded_as_typed_however_teachset_was_started():
    from teachset.cli.common import command_line

    for program in ("/usr/bin/teachset", "/x/site-packages/teachset/__main__.py", "C:\\env\\Scripts\\teachset"):
        assert command_line([program, "select", "my cells/"]) == "teachset select 'my cells/'"
    assert command_line(["-c", "select"]) == "" and command_line([]) == ""


@pytest.mark.slow
def test_demo_on_elpv_end_to_end(tmp_path, capsys):
    """The README's demo, as a user runs it (fewer teacher epochs and seeds): every method on elpv's train split,
    students scored on the 466 held-out images, report written, the study command printed."""
    assert main(["demo", "--out", str(tmp_path), "--teacher-epochs", "15", "--repeats", "2", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    run = next(tmp_path.iterdir())
    assert f"report: {run / 'report.html'}" in out and "teachset study create --name elpv --dataset elpv" in out
    results = json.loads((run / "results.json").read_text())
    methods = {"random", "kcenters", "forgetting", "herding", "medoids", "latent"}
    assert {r["method"] for r in results["summary"]} == methods
    assert all(r["n"] == 2 for r in results["summary"]) and len(results["summary"]) == 6 * 4  # LC, NN x 2 extractors
    assert {row["n_test"] for row in results["rows"]} == {466} and results["split"]["train"] == 2329 - 466
    own = {(r["method"], r["student"], r["extractor"]) for r in results["summary"] if r["own"]}
    assert own == {("latent", "lc", "mobilenet_v2"), ("latent", "nn", "mobilenet_v2")}  # vgg16: no teacher's
    assert set(results["realism"]["methods"]) == methods and len(results["realism"]["images"]) == 12
    assert json.loads((run / "experiment.json").read_text())["datasets"][0]["generator"] == "teachset:elpv-64"
    curve = run / "teaching_sets" / "elpv" / "mobilenet_v2" / "latent" / "5pc" / "seed0" / "curve.jsonl"
    assert len(curve.read_text().splitlines()) == 15
    assert (run / "report.html").read_text().count("data:image/png;base64") == 60
