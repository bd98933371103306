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
from ..atomic import atomic_dir
from ..errors import TeachsetError

FORMAT = "teachset.study/1"
STUDY_FILE = "study.json"
SECRETS_FILE = "secrets.json"
DEFAULT_DATABASE_FILE = "responses.sqlite"
PER_PARTICIPANT_POOL_FACTOR = 10
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
        raise TeachsetError(f"--condition '{text}' is not NAME=PATH; write e.g. --condition random=runs/0001-random")
    if not CONDITION_NAME.fullmatch(name):
        raise TeachsetError(f"condition name '{name}' must be 1-40 letters, digits, '_' or '-', starting with a letter or digit")
    return name, Path(path)


def _write_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    pixels = image[0] if image.shape[0] == 1 else np.moveaxis(image, 0, -1)
    Image.fromarray(pixels).save(path)


def create_study(
    name: str,
    dataset_source: str,
    conditions: list[tuple[str, Path]],
    out: Path,
    test_images: int = 200,
    seed: int = 0,
    per_participant_test: bool = False,
    image_size: int | None = None,
    quiz_feedback: bool = True,
    require_participant_id: bool = False,
    completion_code: str | None = None,
    assign_window_minutes: int = 60,
    consent: str | None = None,
    overwrite: bool = False,
) -> StudyDesign:
    """Write a study folder: one condition per teaching set, test images drawn from the dataset
    without any teaching image (the same for everyone, or a fresh draw per participant)."""
    from ..data import load_dataset
    from ..teaching_set import TeachingSet

    if not name.strip() or len(name) > 200:
        raise TeachsetError("--name must be 1-200 characters; give the study a short title")
    if len(conditions) < 1:
        raise TeachsetError("a study needs at least one --condition NAME=PATH (two or more to compare teaching sets)")
    names = [c for c, _ in conditions]
    if len(set(names)) != len(names):
        raise TeachsetError(f"condition names must differ; got {names}")
    if test_images < 1:
        raise TeachsetError(f"--test-images must be at least 1, got {test_images}")
    if not 1 <= assign_window_minutes <= 7 * 24 * 60:
        raise TeachsetError("--assign-window-minutes must be between 1 and 10080 (a week)")
    if completion_code is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", completion_code):
        raise TeachsetError("--completion-code must be 1-64 letters, digits, '_' or '-' (as Prolific gives it)")

    if overwrite and (Path(out) / DEFAULT_DATABASE_FILE).exists():
        raise TeachsetError(f"'{out}' holds responses ({DEFAULT_DATABASE_FILE}); --overwrite would delete them: "
                            "move the file away or choose another --out")
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
    # also by pixels: a teaching image that is a dataset image under no recorded id must not be a test image
    taught_pixels = {image.tobytes() for ts in sets.values() for image in ts.images if image.shape == dataset.images.shape[1:]}
    eligible = np.array([i for i, image_id in enumerate(dataset.ids)
                         if image_id not in teaching_ids and dataset.images[i].tobytes() not in taught_pixels], dtype=np.int64)
    if test_images > len(eligible):
        raise TeachsetError(
            f"--test-images {test_images} is more than the {len(eligible)} dataset images outside the teaching sets; ask for fewer"
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
            _write_png(tmp / "stimuli" / f"{token}.png", dataset.images[index])
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
                    _write_png(tmp / "stimuli" / f"{token}.png", ts.images[k])
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
            "dataset": {"name": dataset.name, "fingerprint": dataset.fingerprint, "spec": dataset.spec},
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
        (tmp / STUDY_FILE).write_text(json.dumps(meta, indent=1) + "\n")
    # after publishing the folder (which gives its files the usual modes): readable by the owner only
    fd = os.open(Path(out) / SECRETS_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"participant_key": secrets.token_hex(32), "dashboard_token": secrets.token_urlsafe(24)}, f)
    return load_study(out)
