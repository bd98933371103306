"""What a researcher owns and sets at create: texts.md (a safe Markdown subset, sections, placeholders,
display names), the estimated duration, the settings' rules, one display size for every image."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from teachset.errors import OptionError, TeachsetError
from teachset.study.__main__ import main
from teachset.study.create import create_study
from teachset.study.design import load_study
from teachset.study.settings import StudySettings, settings_warnings
from teachset.study.texts import default_texts, estimate_minutes, parse_texts, plain, render_markdown


def conditions(digits_study):
    return [(c.name, digits_study.path / c.folder) for c in digits_study.conditions]


def test_the_markdown_subset_renders_and_escapes_everything_else():
    html = str(render_markdown(
        "## Before you start\n\nSome **bold**, *italic* and _also italic_ text, a snake_case_name and 2*3*4.\n\n"
        "- one\n- two\n  continued\n\n1. first\n2. second\n\n"
        "<script>alert(1)</script> <img src=x onerror=alert(1)> [mail](mailto:a@b.org) [site](https://x.org/_a_?q=1&r=2) "
        "[bad](javascript:alert(1)) \x00 9\x00"))
    assert "<h2>Before you start</h2>" in html
    assert "<strong>bold</strong>" in html and "<em>italic</em>" in html and "<em>also italic</em>" in html
    assert "snake_case_name" in html and "2*3*4" in html
    assert "<ul><li>one</li><li>two continued</li></ul>" in html and "<ol><li>first</li><li>second</li></ol>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html and "<img" not in html
    assert '<a href="mailto:a@b.org"' in html and '<a href="https://x.org/_a_?q=1&amp;r=2"' in html  # no <em> in it
    assert "javascript:" not in html.split("[bad]")[0] and 'href="javascript' not in html
    assert plain("Please click **zero** *now*") == "Please click zero now"


def test_texts_md_sections_placeholders_and_display_names():
    defaults = default_texts(StudySettings(), ["cat", "dog"])
    texts = parse_texts("note to self\n# Consent\n\nAbout {minutes} min.\n\n# Classes\n\n- cat: Cats\n", ["cat", "dog"],
                        "t.md", defaults)
    assert texts.sections["consent"] == "About {minutes} min." and texts.display_names == ("Cats", "dog")
    assert texts.sections["debrief"] == defaults["debrief"]  # a section not given keeps the default
    again = parse_texts(texts.markdown(), ["cat", "dog"], "again")  # what create writes reads back complete
    assert again == texts
    bad = [
        ("# Consnet\n\nx", "not a section"),
        ("# Consent\n\nx\n# Consent\n\ny", "appears twice"),
        ("# Consent\n\nTakes {hours} hours", "placeholder {hours}"),
        ("# Consent\n\n", "is empty"),
        ("# Classes\n\n- horse: Horses", "not a class"),
        ("# Classes\n\ncat = Cats", "is not '- class name: shown name'"),
        ("# Classes\n\n- cat: Pets\n- dog: Pets", "under one name"),
    ]
    for text, message in bad:
        with pytest.raises(TeachsetError, match=message):
            parse_texts(text, ["cat", "dog"], "t.md", defaults)
    with pytest.raises(TeachsetError, match="has no section"):
        parse_texts("# Consent\n\nx", ["cat", "dog"], "t.md")  # the study's own file must be complete


def test_create_writes_the_texts_to_edit_and_serve_reads_the_edits(digits_study, tmp_path):
    mine = tmp_path / "mine.md"
    mine.write_text("# Instructions\n\nSort **{test_trials}** images of {classes}.\n\n# Classes\n\n- 0: Zero\n")
    design = create_study("Texts", "digits", conditions(digits_study), out=tmp_path / "s", test_images=4, texts=mine)
    written = (design.path / "texts.md").read_text()
    assert "# Debrief" in written and "Sort **{test_trials}** images" in written
    assert design.display_names[:2] == ("Zero", "1") and design.text_values()["test_trials"] == 4
    edited = written.replace("Thank you for taking part!", "Many thanks, dear participant.")
    (design.path / "texts.md").write_text(edited)
    assert load_study(design.path).texts.sections["debrief"].startswith("Many thanks, dear participant.")
    (design.path / "texts.md").write_text(edited.replace("# Debrief", "# Debriefing"))
    with pytest.raises(TeachsetError, match="'# Debriefing' is not a section"):
        load_study(design.path)
    (design.path / "texts.md").unlink()
    with pytest.raises(TeachsetError, match="has no texts.md"):
        load_study(design.path)


def test_the_estimated_duration_follows_the_design(digits_study, tmp_path):
    assert estimate_minutes(10, 10, 200, 3) > estimate_minutes(10, 10, 20, 0) >= 1
    small = create_study("Short", "digits", conditions(digits_study), out=tmp_path / "a", test_images=4)
    large = create_study("Long", "digits", conditions(digits_study), out=tmp_path / "b", test_images=300,
                         attention_checks=5, break_every=50)
    assert large.estimated_minutes > small.estimated_minutes
    assert large.text_values()["minutes"] == large.estimated_minutes and large.test_trials == 305


def test_settings_refuse_what_cannot_work_in_one_line(digits_study, tmp_path, capsys):
    with pytest.raises(OptionError, match="a Prolific study needs 'completion_code'"):
        StudySettings(prolific=True)
    for values, option in [({"screen_out_after": 2, "attention_checks": 1}, "screen_out_after"),
                           ({"attention_checks": 5, "test_images": 4}, "attention_checks"),
                           ({"screen_out_code": "X1"}, "screen_out_code"), ({"completion_code": "a b"}, "completion_code"),
                           ({"max_fast_fraction": 1.5}, "max_fast_fraction"), ({"check_kind": "riddles"}, "check_kind"),
                           ({"assign_window_minutes": 99999}, "assign_window_minutes"), ({"quota": 0}, "quota")]:
        with pytest.raises(OptionError) as error:
            StudySettings(**values)
        assert error.value.option == option
    with pytest.raises(OptionError, match="has no parameter 'colour'"):
        create_study("x", "digits", conditions(digits_study), out=tmp_path / "x", colour="red")
    folder = f"A={digits_study.path / digits_study.conditions[0].folder}"
    assert main(["create", "--name", "P", "--dataset", "digits", "--condition", folder, "--prolific",
                 "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "a Prolific study needs --completion-code" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "p").exists()
    assert any("no completion_code" in w for w in settings_warnings(StudySettings()))


def test_every_image_is_shown_at_one_size_and_quiz_files_differ(digits_study, tmp_path, capsys):
    folder = f"A={digits_study.path / digits_study.conditions[0].folder}"
    assert main(["create", "--name", "Big", "--dataset", "digits", "--condition", folder, "--image-size", "32",
                 "--test-images", "4", "--out", str(tmp_path / "big")]) == 0
    captured = capsys.readouterr()
    assert "16 px teaching images, shown at 32 px" in captured.err and "look blurrier" in captured.err
    assert "texts.md" in captured.out and "minutes per participant" in captured.out
    assert "warning: no completion_code" in captured.err  # create warns too
    design = load_study(tmp_path / "big")
    assert design.image_size == 32 and any("blurrier" in note for note in design.notes)
    sizes = {Image.open(path).size for path in design.stimulus_files().values()}
    assert sizes == {(32, 32)}
    teach, quiz = design.conditions[0].teach[0], design.conditions[0].quiz[0]
    teach_bytes = (design.path / "stimuli" / f"{teach.token}.png").read_bytes()
    quiz_bytes = (design.path / "stimuli" / f"{quiz.token}.png").read_bytes()
    assert teach_bytes != quiz_bytes  # the quiz cannot be answered by matching files
    assert Image.open(io.BytesIO(teach_bytes)).tobytes() == Image.open(io.BytesIO(quiz_bytes)).tobytes()
    meta = json.loads((design.path / "study.json").read_text())
    assert meta["conditions"][0]["source_size"] == 16 and meta["settings"]["teaching_during_quiz"] is False
    # no size given: the teaching sets' own, and no warning
    same = create_study("Same", "digits", [("A", digits_study.path / digits_study.conditions[0].folder)],
                        out=tmp_path / "same", test_images=4)
    assert same.image_size == 16 and not same.notes


def test_image_attention_checks_come_from_a_folder_of_classes(digits_study, tmp_path):
    from teachset.data import load_dataset
    from teachset.imaging import to_uint8

    digits = load_dataset("digits", image_size=16)
    root = tmp_path / "clear"
    for label in (0, 1):
        (root / str(label)).mkdir(parents=True)
        for k in range(2):
            index = int((digits.labels == label).nonzero()[0][k])
            Image.fromarray(digits.images[index][0]).save(root / str(label) / f"{k}.png")
    design = create_study("Checks", "digits", conditions(digits_study), out=tmp_path / "s", test_images=4,
                          attention_checks=3, check_kind="images", check_images=root)
    assert len(design.checks) == 4 and sorted(s.label for s in design.checks) == [0, 0, 1, 1]
    with pytest.raises(OptionError, match="need 'check_images'"):
        create_study("x", "digits", conditions(digits_study), out=tmp_path / "x1", test_images=4, attention_checks=1,
                     check_kind="images")
    with pytest.raises(OptionError, match="fewer than the 5 attention checks"):
        create_study("x", "digits", conditions(digits_study), out=tmp_path / "x2", test_images=6, attention_checks=5,
                     check_kind="images", check_images=root)
    (root / "horse").mkdir()
    Image.fromarray(to_uint8(digits.images[0][0] / 255)).save(root / "horse" / "h.png")
    with pytest.raises(OptionError, match="not classes of the dataset"):
        create_study("x", "digits", conditions(digits_study), out=tmp_path / "x3", test_images=4, attention_checks=1,
                     check_kind="images", check_images=root)


def test_a_study_of_the_first_format_still_loads(digits_study, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(digits_study.path, old)
    meta = json.loads((old / "study.json").read_text())
    settings = meta.pop("settings")
    meta.pop("checks"), meta.pop("warnings")
    meta.update(format="teachset.study/1", quiz_feedback=True, require_participant_id=False, completion_code=None,
                assign_window_minutes=settings["assign_window_minutes"], consent="Old consent.")
    (old / "study.json").write_text(json.dumps(meta))
    (old / "texts.md").unlink()
    design = load_study(old)
    assert design.consent == "Old consent." and design.checks == () and design.settings.teaching_during_quiz
    assert design.test_count == digits_study.test_count
