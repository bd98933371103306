"""The `study` commands: create, serve (its links), analyze; user errors as one line, exit 2."""

from __future__ import annotations

import argparse
import json

import pytest

from teachset.study.__main__ import main
from teachset.cli.study import add_commands
from teachset.study.db import Database
from teachset.study.design import load_study


def test_add_commands_registers_the_study_group():
    parser = argparse.ArgumentParser(prog="teachset")
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["study", "serve", "somewhere", "--port", "0"])
    assert args.func.__name__ == "run_serve" and args.port == 0 and args.host == "127.0.0.1"
    args = parser.parse_args(["study", "create", "--name", "n", "--dataset", "digits", "--condition", "A=x"])
    assert args.func.__name__ == "run_create" and args.test_images == 200
    args = parser.parse_args(["study", "analyze", "somewhere", "--no-proxy"])
    assert args.func.__name__ == "run_analyze" and args.no_proxy


@pytest.mark.parametrize("command", ["create", "serve", "analyze"])
def test_help_has_worked_examples(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"teachset study {command}" in out


def test_create_then_analyze_from_the_command_line(digits_study, tmp_path, capsys):
    folders = [f"{c.name}={digits_study.path / c.folder}" for c in digits_study.conditions]
    consent = tmp_path / "consent.txt"
    consent.write_text("Custom consent, first paragraph.\n\nSecond <b>paragraph</b>.")
    out = tmp_path / "cli-study"
    assert main(["create", "--name", "CLI study", "--dataset", "digits", "--condition", folders[0], "--condition",
                 folders[1], "--test-images", "6", "--seed", "4", "--out", str(out), "--consent", str(consent),
                 "--require-participant-id", "--completion-code", "ABC123"]) == 0
    assert "next: teachset study serve" in capsys.readouterr().out
    design = load_study(out)
    assert design.test_count == 6 and design.require_participant_id and design.completion_code == "ABC123"
    assert design.consent.startswith("Custom consent")
    # nothing served yet: a clear error, not an empty report
    assert main(["analyze", str(out), "--no-proxy"]) == 2
    assert "no responses yet" in capsys.readouterr().err
    db = Database(design.default_database_url())
    db.create_schema()
    db.close()
    assert main(["analyze", str(out), "--no-proxy", "--permutations", "100"]) == 0
    assert "report:" in capsys.readouterr().out
    assert (out / "analysis" / "report.html").is_file()
    assert json.loads((out / "analysis" / "analysis.json").read_text())["participants_total"] == 0


@pytest.mark.parametrize("argv,message", [
    (["create", "--name", "x", "--dataset", "digits", "--condition", "noequals"], "NAME=PATH"),
    (["create", "--name", "x", "--dataset", "nowhere-dataset", "--condition", "A=nowhere"], "not a teaching set"),
    (["serve", "no-such-study"], "is not a study"),
    (["analyze", "no-such-study"], "is not a study"),
])
def test_user_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_serve_refuses_a_bad_database_url(digits_study, capsys):
    assert main(["serve", str(digits_study.path), "--database", "mysql://x@y/z", "--port", "0"]) == 2
    assert "not supported" in capsys.readouterr().err
    assert main(["serve", str(digits_study.path), "--database", "postgresql://nobody@127.0.0.1:1/none",
                 "--port", "0"]) == 2
    assert "cannot open database" in capsys.readouterr().err


def test_library_errors_name_options_and_the_cli_shows_flags(digits_study, tmp_path, capsys):
    from teachset.errors import OptionError
    from teachset.study.create import create_study
    from teachset.study.design import parse_condition

    with pytest.raises(OptionError) as error:
        parse_condition("noequals")
    assert error.value.option == "condition" and "--" not in str(error.value)
    folder = digits_study.path / digits_study.conditions[0].folder
    with pytest.raises(OptionError, match="'test_images' 5000 is more than"):
        create_study("x", "digits", [("A", folder)], out=tmp_path / "s", test_images=5000)
    assert main(["create", "--name", "x", "--dataset", "digits", "--condition", f"A={folder}", "--test-images", "5000",
                 "--out", str(tmp_path / "s")]) == 2
    assert "--test-images 5000 is more than" in capsys.readouterr().err
    assert main(["analyze", str(digits_study.path), "--no-proxy", "--permutations", "10"]) == 2
    assert "--permutations 10 is too few" in capsys.readouterr().err


def test_consent_file_default_folder_and_database_url(digits_study, tmp_path, monkeypatch, capsys):
    from teachset.study.design import DATABASE_ENV, read_consent, study_folder

    assert read_consent(None) is None
    (tmp_path / "consent.txt").write_text("  \n")
    with pytest.raises(Exception, match="is empty"):
        read_consent(tmp_path / "consent.txt")
    folder = f"A={digits_study.path / digits_study.conditions[0].folder}"
    assert main(["create", "--name", "x", "--dataset", "digits", "--condition", folder, "--consent",
                 str(tmp_path / "missing.txt")]) == 2
    assert "cannot read the consent file" in capsys.readouterr().err
    assert study_folder("Solar cells: pilot #1").as_posix() == "studies/Solar_cells_pilot_1"
    assert study_folder("...").name == "study"
    monkeypatch.delenv(DATABASE_ENV, raising=False)
    assert digits_study.database_url() == digits_study.default_database_url()
    monkeypatch.setenv(DATABASE_ENV, "postgresql://from-env/db")
    assert digits_study.database_url() == "postgresql://from-env/db"
    assert digits_study.database_url("sqlite:////tmp/given.sqlite") == "sqlite:////tmp/given.sqlite"


def test_study_modules_import_one_another_without_a_cycle():
    """Not even inside functions: app and dashboard share web.py instead of importing each other."""
    import ast
    from pathlib import Path

    import teachset.study

    root = Path(teachset.study.__file__).parent
    modules = {p.stem: p for p in root.glob("*.py")}
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                found |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
        graph[name] = found & set(modules)

    def reaches(start: str, target: str, seen: set) -> bool:
        return any(d == target or (d not in seen and not seen.add(d) and reaches(d, target, seen)) for d in graph[start])

    assert not [name for name in graph if reaches(name, name, set())]
    assert "app" not in graph["dashboard"] and "web" in graph["dashboard"] and "web" in graph["app"]


def test_test_images_come_from_the_test_split_of_the_teaching_sets(tmp_path):
    from teachset.data import load_dataset
    from teachset.data.splits import Split
    from teachset.errors import TeachsetError
    from teachset.methods import TeachingData, make_method
    from teachset.study.create import create_study

    dataset = load_dataset("digits", image_size=8)
    train, _ = TeachingData(dataset, dataset.tensor().flatten(1).numpy(), "pixels").split(Split())
    folder = make_method("random").make(train, per_class=1).save(tmp_path / "set")
    create_study("Split", "digits", [f"A={folder}"], out=tmp_path / "study", test_images=300, seed=0)
    test_ids = {dataset.ids[i] for i in Split().indices(dataset.labels, None, dataset.class_names)[1]}
    shown = {item["source_id"] for item in json.loads((tmp_path / "study" / "study.json").read_text())["test"]["pool"]}
    assert len(shown) == 300 and shown <= test_ids
    other, _ = TeachingData(dataset, dataset.tensor().flatten(1).numpy(), "pixels").split(Split(split_seed=1))
    second = make_method("random").make(other, per_class=1).save(tmp_path / "other")
    with pytest.raises(TeachsetError, match="different train/test splits"):
        create_study("Split", "digits", [f"A={folder}", f"B={second}"], out=tmp_path / "study2", test_images=10)
