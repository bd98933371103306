"""The study folder: what a study shows, to whom, in which order. Written once by `create_study`
(create.py); read by `load_study` here.

    study.json          format, uid, name, dataset (spec + fingerprint), the test split, class names,
                        the display size, test stimuli, attention checks, conditions (their quiz and
                        teaching-page stimuli), settings (settings.py), the warnings create gave
    texts.md            what participants read, and the classes' display names (texts.py): the
                        researcher edits it; `study serve` reads it
    secrets.json        the key of the participant-id hash and the dashboard token (mode 0600;
                        never exported, never sent to a browser)
    conditions/<name>/  a copy of each condition's teaching set, as given
    stimuli/<token>.png every image a participant can see, all at the study's one display size,
                        under a random opaque name

Every image a browser can fetch is named by a random token, so a URL never tells a class: the
teaching page and the quiz show the same teaching image under two different tokens, in files that
differ byte for byte. The tokens come from `secrets` (unguessable); everything experimental
(which test images, which checks, the orders) comes from the study seed.

Nothing here imports torch: the server reads a study without the machine-learning stack.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import OptionError, TeachsetError
from .settings import StudySettings, settings_warnings
from .texts import TEXTS_FILE, StudyTexts, default_texts, estimate_minutes, read_texts

FORMAT = "teachset.study/2"
FORMATS = ("teachset.study/1", FORMAT)  # /1: before settings, texts.md and attention checks
STUDY_FILE = "study.json"
SECRETS_FILE = "secrets.json"
DEFAULT_DATABASE_FILE = "responses.sqlite"
DATABASE_ENV = "TEACHSET_STUDY_DATABASE"  # the database URL when none is given
STUDIES_DIR = "studies"  # where a study folder goes when none is given
CONDITION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")


@dataclass(frozen=True)
class Stimulus:
    """One image a participant can be shown: `item` is a dataset index (test), a teaching-set index
    (teaching, quiz) or an index among the attention checks."""

    token: str
    item: int
    label: int
    source_id: str | None = None


@dataclass(frozen=True)
class Condition:
    name: str
    folder: str  # relative to the study folder
    method: str
    source: str  # where the teaching set was copied from
    teach: tuple[Stimulus, ...]  # shown labeled on the teaching page, in teaching-set order
    quiz: tuple[Stimulus, ...]  # the same images under other tokens, shown unlabeled in the quiz


@dataclass(frozen=True)
class StudyDesign:
    path: Path
    uid: str
    name: str
    dataset: dict
    class_names: tuple[str, ...]
    image_size: int  # every stimulus is this many pixels square
    test_pool: tuple[Stimulus, ...]
    checks: tuple[Stimulus, ...]  # attention-check stimuli (label: the right answer)
    conditions: tuple[Condition, ...]
    settings: StudySettings
    texts: StudyTexts
    notes: tuple[str, ...] = ()  # the warnings create gave

    # ---- the settings under their old names ----------------------------------------------------
    seed = property(lambda self: self.settings.seed)
    test_count = property(lambda self: self.settings.test_images)
    test_mode = property(lambda self: "per_participant" if self.settings.per_participant_test else "shared")
    quiz_feedback = property(lambda self: self.settings.quiz_feedback)
    require_participant_id = property(lambda self: self.settings.requires_id)
    completion_code = property(lambda self: self.settings.completion_code)
    assign_window_minutes = property(lambda self: self.settings.assign_window_minutes)
    consent = property(lambda self: self.texts.sections["consent"])
    display_names = property(lambda self: self.texts.display_names)

    @property
    def condition_names(self) -> list[str]:
        return [c.name for c in self.conditions]

    @property
    def test_trials(self) -> int:
        """Test trials per participant, attention checks included."""
        return self.settings.test_images + self.settings.attention_checks

    @property
    def estimated_minutes(self) -> int:
        teaching = max(len(c.teach) for c in self.conditions)
        breaks = (self.test_trials - 1) // self.settings.break_every if self.settings.break_every else 0
        return estimate_minutes(teaching, teaching, self.test_trials, breaks)

    def text_values(self) -> dict:
        """What the placeholders of texts.md stand for in this study."""
        names = [f"“{n}”" for n in self.display_names]
        teaching = max(len(c.teach) for c in self.conditions)
        return {"minutes": self.estimated_minutes, "quiz_trials": teaching, "teaching_images": teaching,
                "test_trials": self.test_trials, "break_every": self.settings.break_every, "study": self.name,
                "classes": ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]}

    def condition(self, name: str) -> Condition:
        for condition in self.conditions:
            if condition.name == name:
                return condition
        raise KeyError(name)

    def stimulus_files(self) -> dict[str, Path]:
        """token -> PNG file, for every image a browser may fetch."""
        tokens = [s.token for s in self.test_pool + self.checks]
        for condition in self.conditions:
            tokens += [s.token for s in condition.teach + condition.quiz]
        return {token: self.path / "stimuli" / f"{token}.png" for token in tokens}

    def secrets(self) -> dict:
        try:
            return json.loads((self.path / SECRETS_FILE).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise TeachsetError(f"cannot read '{self.path / SECRETS_FILE}' ({error}); it is written by 'study create'") from None

    def default_database_url(self) -> str:
        return f"sqlite:///{(self.path / DEFAULT_DATABASE_FILE).resolve()}"

    def database_url(self, url: str | None = None) -> str:
        """The database of this study's responses: `url` if given, else $TEACHSET_STUDY_DATABASE, else
        the SQLite file in the study folder."""
        return url or os.environ.get(DATABASE_ENV) or self.default_database_url()


def _stimuli(items: list[dict]) -> tuple[Stimulus, ...]:
    return tuple(Stimulus(i["token"], int(i["item"]), int(i["label"]), i.get("source_id")) for i in items)


def _settings_of_first_format(meta: dict) -> StudySettings:
    return StudySettings(test_images=int(meta["test"]["count"]), seed=int(meta["seed"]),
                         per_participant_test=meta["test"]["mode"] == "per_participant",
                         quiz_feedback=bool(meta["quiz_feedback"]), teaching_during_quiz=True,
                         require_participant_id=bool(meta["require_participant_id"]),
                         completion_code=meta.get("completion_code"),
                         assign_window_minutes=int(meta["assign_window_minutes"]), break_every=0)


def load_study(folder: str | Path) -> StudyDesign:
    folder = Path(folder)
    path = folder / STUDY_FILE
    if not path.is_file():
        raise TeachsetError(f"'{folder}' is not a study: it has no {STUDY_FILE}; make one with 'teachset study create'")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise TeachsetError(f"'{path}' is not valid JSON ({error}); recreate the study") from None
    if meta.get("format") not in FORMATS:
        raise TeachsetError(f"'{path}' has format {meta.get('format')!r}; this teachset reads {', '.join(FORMATS)}")
    class_names = list(meta["class_names"])
    if meta["format"] == FORMAT:
        settings = StudySettings.from_record(meta["settings"])
        if not (folder / TEXTS_FILE).is_file():
            raise TeachsetError(f"'{folder}' has no {TEXTS_FILE} (what participants read); restore it from a copy, "
                                "or recreate the study to get the default texts")
        texts = read_texts(folder / TEXTS_FILE, class_names)
    else:
        settings = _settings_of_first_format(meta)
        defaults = default_texts(settings, class_names)
        texts = StudyTexts({**defaults, "consent": meta["consent"]}, tuple(class_names))
    return StudyDesign(
        path=folder.resolve(),
        uid=meta["uid"],
        name=meta["name"],
        dataset=meta["dataset"],
        class_names=tuple(class_names),
        image_size=int(meta["image_size"]),
        test_pool=_stimuli(meta["test"]["pool"]),
        checks=_stimuli(meta.get("checks", {}).get("items", [])),
        conditions=tuple(
            Condition(c["name"], c["folder"], c["method"], c["source"], _stimuli(c["teach"]), _stimuli(c["quiz"]))
            for c in meta["conditions"]
        ),
        settings=settings,
        texts=texts,
        notes=tuple(meta.get("warnings", ())),
    )


def parse_condition(text: str) -> tuple[str, Path]:
    """'A=runs/random-0' -> ('A', Path('runs/random-0'))."""
    name, sep, path = text.partition("=")
    if not sep or not path:
        raise OptionError("condition", f"{{option}} '{text}' is not NAME=PATH; write e.g. random=runs/0001-random")
    if not CONDITION_NAME.fullmatch(name):
        raise TeachsetError(f"condition name '{name}' must be 1-40 letters, digits, '_' or '-', starting with a letter or digit")
    return name, Path(path)


def study_folder(name: str) -> Path:
    """Where a study goes when no folder is given: studies/<name, in letters, digits, '.', '_', '-'>."""
    return Path(STUDIES_DIR) / (re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "study")


def read_consent(path: str | Path | None) -> str | None:
    """The consent text of a UTF-8 text file (Markdown; paragraphs separated by blank lines); None for None."""
    if path is None:
        return None
    try:
        consent = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise TeachsetError(f"cannot read the consent file '{path}' ({error}); give a UTF-8 text file") from None
    if not consent:
        raise TeachsetError(f"the consent file '{path}' is empty; write the consent text into it")
    return consent


def study_warnings(design: StudyDesign) -> list[str]:
    """What create warned about, and what the settings leave open (serve and the dashboard show them)."""
    return list(design.notes) + settings_warnings(design.settings)
