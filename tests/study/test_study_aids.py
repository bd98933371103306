"""Teaching aids in a study: a condition's counterfactual strips copied in at create, their frames
served under random tokens, refused where they do not match the teaching set, offered on the
teaching page, their openings logged like the teaching set's reopenings, and their use in the
export and the analysis. The strips here are made without a generator, in the layout `teachset
explain` writes (teachset.imaging.image_grid, one row of frames). Chromium: test_study_browser.py."""

from __future__ import annotations

import csv
import json
import random
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from teachset.errors import OptionError, TeachsetError
from teachset.study.aids import aid_files, load_aids
from teachset.study.create import create_study
from teachset.study.db import events
from teachset.study.simulate import Participation, answer_all, start
from teachset.teaching_set import TeachingSet

FRAMES = 5
AID = re.compile(r"data-aid='([^']*)'")


def write_explanations(folder: Path, frames: int = FRAMES) -> Path:
    """What `teachset explain` writes into a teaching set's folder: per image and other class a strip
    (here the image brightening step by step), a change map and explanations.json."""
    from teachset.imaging import image_grid, png_bytes

    ts = TeachingSet.load(folder)
    out = folder / "explanations"
    out.mkdir()
    paths = []
    for i in range(len(ts)):
        for t, target in enumerate(ts.class_names):
            if t == ts.labels[i]:
                continue
            steps = np.stack([np.clip(ts.images[i].astype(int) + 40 * k, 0, 255).astype(np.uint8) for k in range(frames)])
            name = f"{i:02d}_to_{target}"
            (out / f"{name}.png").write_bytes(png_bytes(image_grid(steps, ncol=frames)))
            (out / f"{name}_change.png").write_bytes(png_bytes(steps[-1]))
            paths.append({"image": i, "from": ts.class_names[ts.labels[i]], "to": target, "strip": f"{name}.png",
                          "change": f"{name}_change.png", "probabilities": np.linspace(0.1, 0.9, frames).tolist()})
    (out / "explanations.json").write_text(json.dumps({"options": {}, "generator": "test", "paths": paths}))
    return out


def aided_set(pair_study, root: Path) -> Path:
    """A copy of pair_study's teaching set (2 classes, 2 images each) with explanations."""
    folder = root / "aided-set"
    shutil.copytree(pair_study.path / pair_study.conditions[0].folder, folder)
    write_explanations(folder)
    return folder


def make_aid_study(pair_study, root: Path, **options):
    """pair_study's teaching set as condition A with its aids (4 test images)."""
    folder = aided_set(pair_study, root)
    return create_study("Aids", pair_study.dataset["spec"]["source"], [("A", folder)], out=root / "study", aids=["A"],
                        test_images=4, seed=3, **options)


@pytest.fixture(scope="module")
def aid_study(pair_study, tmp_path_factory):
    return make_aid_study(pair_study, tmp_path_factory.mktemp("aid-study"))


def test_an_aid_is_copied_and_its_frames_are_stimuli_under_random_tokens(aid_study):
    meta = json.loads((aid_study.path / "study.json").read_text())
    teaching_set = TeachingSet.load(aid_study.path / "conditions" / "A")
    strips = meta["aids"]["A"]["strips"]
    assert meta["aids"]["A"]["folder"] == "conditions/A/explanations"
    assert (aid_study.path / "conditions/A/explanations/explanations.json").is_file()
    assert [(s["item"], s["to"]) for s in strips] == [(k, 1 - int(teaching_set.labels[k])) for k in range(len(teaching_set))]
    assert all(len(s["frames"]) == FRAMES and all(re.fullmatch(r"[0-9a-f]{16}", t) for t in s["frames"]) for s in strips)
    files = aid_files(aid_study)
    assert len(files) == FRAMES * len(teaching_set) and not set(files) & set(aid_study.stimulus_files())
    from PIL import Image

    first = np.asarray(Image.open(files[strips[0]["frames"][0]]))
    assert first.shape == (32, 32) and np.array_equal(first, teaching_set.images[strips[0]["item"], 0])  # the image itself
    by_token = load_aids(aid_study)["A"]
    assert set(by_token) == {s.token for s in aid_study.conditions[0].teach}  # keyed by the teaching page's tokens


def test_aids_that_do_not_match_the_teaching_set_are_refused_in_one_line(pair_study, tmp_path):
    source = pair_study.dataset["spec"]["source"]
    folder = aided_set(pair_study, tmp_path)
    bare = tmp_path / "bare-set"
    shutil.copytree(pair_study.path / pair_study.conditions[0].folder, bare)

    def refusal(conditions, aids, error=TeachsetError) -> str:
        with pytest.raises(error) as caught:
            create_study("Aids", source, conditions, out=tmp_path / "refused", aids=aids, test_images=4)
        assert "\n" not in str(caught.value)
        return str(caught.value)

    assert "has no explanations.json" in refusal([("A", bare)], ["A"])
    assert "which the study does not have" in refusal([("A", folder)], ["B"], OptionError)
    meta_path = folder / "explanations" / "explanations.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "paths": [p for p in meta["paths"] if p["image"] != 3]}))
    assert "explains 3 images but the condition's teaching set has 4" in refusal([("A", folder)], ["A"])
    meta_path.write_text(json.dumps({**meta, "paths": [{**p, "from": p["to"]} for p in meta["paths"]]}))
    assert "in the teaching set it is" in refusal([("A", folder)], ["A"])
    meta_path.write_text(json.dumps(meta))
    shutil.copy(folder / "images" / "zero" / next(p.name for p in (folder / "images" / "zero").iterdir()),
                folder / "explanations" / meta["paths"][0]["strip"])  # a single image, not a row of frames
    assert "is not one row of square frames" in refusal([("A", folder)], ["A"])


def test_openings_are_logged_in_teaching_and_test_and_counted_in_the_export_and_analysis(aid_study, pair_study,
                                                                                          serve_study, tmp_path):
    from teachset.study.analysis import analyze

    live = serve_study(aid_study, f"sqlite:///{tmp_path / 'responses.sqlite'}")
    client, record = live.client(), Participation("aided")
    reply = client.get("/?participant=aided")
    form = {"consent": "yes", **dict(re.findall(r'<input type="hidden" name="([A-Za-z_]+)" value="([^"]*)"',
                                                reply.body.decode()))}
    client.post_form("/consent", form)
    page = client.get("/teach").body.decode()
    offered = [json.loads(text.replace("&#39;", "'")) for text in AID.findall(page)]
    assert len(offered) == 4 and all(a[0]["to"] in ("zero", "one") and len(a[0]["frames"]) == FRAMES for a in offered)
    frame = client.get(offered[0][0]["frames"][-1])
    assert frame.status == 200 and frame.body.startswith(b"\x89PNG")

    def event(kind, duration=None):
        body = {"event_id": f"e{random.getrandbits(48):012x}", "kind": kind}
        return client.post_json("/api/event", body | ({"duration_ms": duration} if duration is not None else {}))

    assert event("open_aid").status == 200 and event("close_aid", 1500).status == 200
    client.post_form("/teach/done", {})
    state = client.get("/api/state").json()
    assert state["phase"] == "quiz" and event("open_aid").status == 409  # the teaching set is hidden in the quiz
    state = answer_all(client, state, lambda s: 0, record, random.Random(0), max_answers=4)  # the quiz
    state = answer_all(client, state, lambda s: 0, record, random.Random(0), max_answers=1)  # test trial 0
    assert state["phase"] == "test" and state["trial"] == 1
    assert event("open_aid").status == 200 and event("close_aid", 700).status == 200
    answer_all(client, state, lambda s: 0, record, random.Random(0))
    with live.db.read() as conn:
        logged = [(e.kind, e.phase, e.position, e.duration_ms) for e in conn.execute(select(events).order_by(events.c.id))]
    assert logged == [("open_aid", "teaching", 0, None), ("close_aid", "teaching", 0, 1500),
                      ("teaching_done", "teaching", 0, None), ("open_aid", "test", 1, None), ("close_aid", "test", 1, 700)]

    plain = serve_study(pair_study, f"sqlite:///{tmp_path / 'plain.sqlite'}")
    other = plain.client()  # a condition without aids refuses them
    start(other, "plain", Participation("plain"))
    reply = other.post_json("/api/event", {"event_id": "plain-aid-1", "kind": "open_aid"})
    assert reply.status == 409 and "no teaching aids" in reply.json()["error"]

    summary = analyze(aid_study, live.db, tmp_path / "analysis", proxy=False, permutations=100)
    [row] = summary["aids"]
    assert (row["condition"], row["participants"], row["used_aids"], row["openings_per_participant"]) == ("A", 1, 1, 2.0)
    assert row["seconds_open_per_participant"] == 2.2
    assert row["trials_with_aid_trials"] == 1 and row["trials_without_aid_trials"] == 3 and row["non_users_trials"] == 0
    with open(tmp_path / "analysis" / "participants.csv") as f:
        [participant] = list(csv.DictReader(f))
    assert (participant["aid_openings"], participant["aid_s"]) == ("2", "2.2")
    with open(tmp_path / "analysis" / "trials.csv") as f:
        opened = [(t["phase"], t["trial"], t["aid_opened"]) for t in csv.DictReader(f) if t["aid_opened"] != "0"]
    assert opened == [("test", "1", "1")]
    assert (tmp_path / "analysis" / "aids.csv").is_file()
    report = (tmp_path / "analysis" / "report.html").read_text()
    assert "Teaching aids" in report and "<th>aids opened</th>" in report  # per condition, and per participant
    assert "<td>2</td><td>2.2</td>" in report


def test_the_command_line_takes_aids(pair_study, tmp_path, capsys):
    from teachset.cli import main

    folder = aided_set(pair_study, tmp_path)
    base = ["study", "create", "--name", "Aids", "--dataset", pair_study.dataset["spec"]["source"],
            "--condition", f"A={folder}", "--test-images", "4"]
    assert main(base + ["--aid", "Z", "--out", str(tmp_path / "z")]) == 2
    assert "error: --aid names condition 'Z', which the study does not have" in capsys.readouterr().err
    assert main(base + ["--aid", f"A={folder / 'explanations'}", "--out", str(tmp_path / "ok")]) == 0
    assert len(json.loads((tmp_path / "ok" / "study.json").read_text())["aids"]["A"]["strips"]) == 4
