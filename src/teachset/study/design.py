"""The study folder: what a study shows, to whom, in which order; written once by `create_study`.

    study.json          format, uid, name, seed, dataset (spec + fingerprint), class names, test
                        stimuli, conditions (their quiz and teaching-page stimuli), settings
    secrets.json        the key of the participant-id hash and the dashboard token (mode 0600;
                        never exported, never sent to a browser)
    conditions/<name>/  a copy of each condition's teaching set, as given
    stimuli/<token>.png every image a participant can see, under a random opaque name

Every image a browser can fetch is named by a random token, so a URL never tells a class: the
teaching page and the quiz even show the same teaching image under two different tokens. The
tokens come from `secrets` (unguessable); everything experimental (which test images, the
orders) comes from the study seed.

Nothing here imports torch: the server reads a study without the machine-learning stack.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .. import __version__
from ..atomic import atomic_dir, write_json
from ..data.splits import Split
from ..errors import OptionError, TeachsetError

FORMAT = "teachset.study/1"
STUDY_FILE = "study.json"
SECRETS_FILE = "secrets.json"
DEFAULT_DATABASE_FILE = "responses.sqlite"
DATABASE_ENV = "TEACHSET_STUDY_DATABASE"  # the database URL when none is given
STUDIES_DIR = "studies"  # where a study folder goes when none is given
PER_PARTICIPANT_POOL_FACTOR = 10
TEST_IMAGES = 200  # test images per participant
ASSIGN_WINDOW_MINUTES = 60  # sessions started this recently count as filling their condition
CONDITION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")
DEFAULT_CONSENT = (
    "This is a short study about learning to tell images apart. You will first look at a few labeled "
    "example images, then answer a short quiz on them, then sort new images into the same classes.\n\n"
    "It takes about 15 minutes. Your answers and response times are recorded together with a "
    "pseudonymous code; no name or e-mail address is collected. You may stop at any time by closing "
    "the page.\n\nIf you agree to take part, tick the box below and press Start."
)


@dataclass(frozen=True)
class Stimulus:
    """One image a participant can be shown: `item` is a dataset index (test) or a teaching-set index."""

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
    seed: int
    dataset: dict
    class_names: tuple[str, ...]
    image_size: int
    test_mode: str  # "shared": every participant sees all `test_pool`; "per_participant": a draw of test_count
    test_count: int
    test_pool: tuple[Stimulus, ...]
    conditions: tuple[Condition, ...]
    quiz_feedback: bool
    require_participant_id: bool
    completion_code: str | None
    assign_window_minutes: int
    consent: str

    @property
    def condition_names(self) -> list[str]:
        return [c.name for c in self.conditions]

    def condition(self, name: str) -> Condition:
        for condition in self.conditions:
            if condition.name == name:
                return condition
        raise KeyError(name)

    def stimulus_files(self) -> dict[str, Path]:
        """token -> PNG file, for every image a browser may fetch."""
        tokens = [s.token for s in self.test_pool]
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


def load_study(folder: str | Path) -> StudyDesign:
    folder = Path(folder)
    path = folder / STUDY_FILE
    if not path.is_file():
        raise TeachsetError(f"'{folder}' is not a study: it has no {STUDY_FILE}; make one with 'teachset study create'")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise TeachsetError(f"'{path}' is not valid JSON ({error}); recreate the study") from None
    if meta.get("format") != FORMAT:
        raise TeachsetError(f"'{path}' has format {meta.get('format')!r}; this teachset reads {FORMAT}")
    return StudyDesign(
        path=folder.resolve(),
        uid=meta["uid"],
        name=meta["name"],
        seed=int(meta["seed"]),
        dataset=meta["dataset"],
        class_names=tuple(meta["class_names"]),
        image_size=int(meta["image_size"]),
        test_mode=meta["test"]["mode"],
        test_count=int(meta["test"]["count"]),
        test_pool=_stimuli(meta["test"]["pool"]),
        conditions=tuple(
            Condition(c["name"], c["folder"], c["method"], c["source"], _stimuli(c["teach"]), _stimuli(c["quiz"]))
            for c in meta["conditions"]
        ),
        quiz_feedback=bool(meta["quiz_feedback"]),
        require_participant_id=bool(meta["require_participant_id"]),
        completion_code=meta.get("completion_code"),
        assign_window_minutes=int(meta["assign_window_minutes"]),
        consent=meta["consent"],
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
    """The consent text of a UTF-8 text file (paragraphs separated by blank lines); None for None."""
    if path is None:
        return None
    try:
        consent = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise TeachsetError(f"cannot read the consent file '{path}' ({error}); give a UTF-8 text file") from None
    if not consent:
        raise TeachsetError(f"the consent file '{path}' is empty; write the consent text into it")
    return consent


def test_split(sets: dict) -> Split:
    """The split whose test part the study's test images come from: the one every condition's teaching
    set was made with (sets without one, made under the paper's protocol, leave every image eligible)."""
    splits = {json.dumps(Split.from_record(ts.dataset.get("split")).record(), sort_keys=True) for ts in sets.values()}
    if len(splits) > 1:
        raise TeachsetError("the conditions' teaching sets were made from different train/test splits; make them all from "
                            "one split, so that no test image was seen by any method")
    return Split.from_record(next(iter(sets.values())).dataset.get("split"))


def create_study(
    name: str,
    dataset_source: str,
    conditions: list[tuple[str, Path] | str],
    out: str | Path | None = None,
    test_images: int = TEST_IMAGES,
    seed: int = 0,
    per_participant_test: bool = False,
    image_size: int | None = None,
    quiz_feedback: bool = True,
    require_participant_id: bool = False,
    completion_code: str | None = None,
    assign_window_minutes: int = ASSIGN_WINDOW_MINUTES,
    consent: str | None = None,
    overwrite: bool = False,
) -> StudyDesign:
    """Write a study folder (`out`, default studies/<name>): one condition per teaching set, test
    images drawn from the dataset without any teaching image (the same for everyone, or a fresh
    draw per participant). `conditions`: (name, teaching-set folder) pairs or 'NAME=PATH' texts;
    `consent`: the consent text (default DEFAULT_CONSENT; read_consent reads one from a file)."""
    from ..data import load_dataset
    from ..imaging import png_bytes
    from ..teaching_set import TeachingSet

    out = Path(out) if out is not None else study_folder(name)
    conditions = [parse_condition(c) if isinstance(c, str) else c for c in conditions]
    if not name.strip() or len(name) > 200:
        raise OptionError("name", "{option} must be 1-200 characters; give the study a short title")
    if len(conditions) < 1:
        raise OptionError("condition", "a study needs at least one {option} (two or more to compare teaching sets)")
    names = [c for c, _ in conditions]
    if len(set(names)) != len(names):
        raise TeachsetError(f"condition names must differ; got {names}")
    if test_images < 1:
        raise OptionError("test_images", f"{{option}} must be at least 1, got {test_images}")
    if not 1 <= assign_window_minutes <= 7 * 24 * 60:
        raise OptionError("assign_window_minutes", "{option} must be between 1 and 10080 (a week)")
    if completion_code is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", completion_code):
        raise OptionError("completion_code", "{option} must be 1-64 letters, digits, '_' or '-' (as Prolific gives it)")

    if overwrite and (out / DEFAULT_DATABASE_FILE).exists():
        raise OptionError("overwrite", f"'{out}' holds responses ({DEFAULT_DATABASE_FILE}); {{option}} would delete "
                          "them: move the file away or write the study to another folder")
    sets = {}
    for cname, folder in conditions:
        sets[cname] = TeachingSet.load(folder)
    first = next(iter(sets.values()))
    size = image_size or int(first.images.shape[-1])
    channels = (first.dataset.get("spec") or {}).get("channels")
    dataset = load_dataset(dataset_source, image_size=size, channels=channels)

    teaching_ids: set[str] = set()
    for cname, ts in sets.items():
        if list(ts.class_names) != list(dataset.class_names):
            raise TeachsetError(
                f"condition '{cname}' has classes {ts.class_names} but dataset '{dataset.name}' has "
                f"{dataset.class_names}; give the dataset the teaching set was made from"
            )
        if ts.source_ids is not None:
            ids = {i for i in ts.source_ids if i is not None}
            known = ids & set(dataset.ids)
            if ids and not known:
                raise TeachsetError(
                    f"none of condition '{cname}''s teaching images are in dataset '{dataset.name}'; "
                    "give the dataset the teaching set was made from"
                )
            teaching_ids |= ids
    split = test_split(sets)
    test_part = set(split.indices(dataset.labels, dataset.groups, dataset.class_names)[1].tolist())
    # also by pixels: a teaching image that is a dataset image under no recorded id must not be a test image
    taught_pixels = {image.tobytes() for ts in sets.values() for image in ts.images if image.shape == dataset.images.shape[1:]}
    eligible = np.array([i for i, image_id in enumerate(dataset.ids) if i in test_part and image_id not in teaching_ids
                         and dataset.images[i].tobytes() not in taught_pixels], dtype=np.int64)
    if test_images > len(eligible):
        raise OptionError(
            "test_images", f"{{option}} {test_images} is more than the {len(eligible)} images of the dataset's test split "
            "outside the teaching sets; ask for fewer"
        )
    rng = np.random.default_rng(seed)
    if per_participant_test:
        # a pool of up to 10x the per-participant count; each participant draws test_images of it
        pool = rng.permutation(eligible)[: PER_PARTICIPANT_POOL_FACTOR * test_images]
    else:
        pool = rng.choice(eligible, size=test_images, replace=False)

    def new_token() -> str:
        return secrets.token_hex(8)

    with atomic_dir(out, overwrite=overwrite) as tmp:
        (tmp / "stimuli").mkdir()
        test_items = []
        for index in pool:
            token = new_token()
            (tmp / "stimuli" / f"{token}.png").write_bytes(png_bytes(dataset.images[index]))
            test_items.append({"token": token, "item": int(index), "label": int(dataset.labels[index]),
                               "source_id": dataset.ids[index]})
        condition_meta = []
        for cname, ts in sets.items():
            ts.save(tmp / "conditions" / cname)
            teach, quiz = [], []
            for k in range(len(ts)):
                source_id = ts.source_ids[k] if ts.source_ids else None
                for group in (teach, quiz):
                    token = new_token()
                    (tmp / "stimuli" / f"{token}.png").write_bytes(png_bytes(ts.images[k]))
                    group.append({"token": token, "item": k, "label": int(ts.labels[k]), "source_id": source_id})
            condition_meta.append({"name": cname, "folder": f"conditions/{cname}", "method": ts.method,
                                   "source": str(Path(ts.path or "").resolve()), "teach": teach, "quiz": quiz})
        meta = {
            "format": FORMAT,
            "uid": uuid.uuid4().hex,
            "name": name,
            "seed": seed,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "code_version": __version__,
            "dataset": dataset.record(),
            "test_split": split.record(),
            "class_names": list(dataset.class_names),
            "image_size": size,
            "test": {"mode": "per_participant" if per_participant_test else "shared", "count": test_images,
                     "pool": test_items},
            "conditions": condition_meta,
            "quiz_feedback": quiz_feedback,
            "require_participant_id": require_participant_id,
            "completion_code": completion_code,
            "assign_window_minutes": assign_window_minutes,
            "consent": consent if consent is not None else DEFAULT_CONSENT,
        }
        write_json(tmp / STUDY_FILE, meta)
    # after publishing the folder (which gives its files the usual modes): readable by the owner only
    fd = os.open(out / SECRETS_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"participant_key": secrets.token_hex(32), "dashboard_token": secrets.token_urlsafe(24)}, f)
    return load_study(out)
