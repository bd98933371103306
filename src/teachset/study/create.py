"""`create_study`: write a study folder (design.py says what is in one) from teaching sets and a dataset.

The display resolution is a choice, recorded in study.json under "display", the same for every
condition unless the researcher explicitly mixes them (`mixed_display`):
    working    every stimulus at the working size (image_size, default the teaching sets'): the test
               images are loaded at it, teaching images of another size rescaled to it, with a
               warning where that makes them look different from the test images;
    N          every stimulus made at the working size as above, then written at N px (upsampled smoothly);
    original   real images at their original resolution: the teaching sets' exported originals
               (exported into the study's copy of a set that has none yet) and the test images'
               originals; only where every condition has originals. The page shows every image in
               one box of one CSS size.
Teaching aids (aids.py) are copied and written here too. Attention checks: an instructed-response
check is a plain grey card whose trial says which class to click; an image check is an unambiguous
image, from a folder of class sub-folders the researcher gives.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .. import __version__
from ..atomic import atomic_dir, atomic_write_text, write_json
from ..errors import OptionError, TeachsetError
from ..options import build
from .aids import FOLDER as AID_FOLDER
from .aids import parse_aids, read_aid
from .design import (DEFAULT_DATABASE_FILE, FORMAT, SECRETS_FILE, STUDY_FILE, StudyDesign, load_study, parse_condition,
                     study_folder)
from .settings import StudySettings
from .texts import TEXTS_FILE, StudyTexts, default_texts, parse_texts, read_texts

PER_PARTICIPANT_POOL_FACTOR = 10
CHECK_GREY = 160  # the instructed-response card: one flat grey
DISPLAY_MODES = ("working", "original")
DISPLAY_SIZES = (16, 2048)
CSS_PX, CSS_ORIGINAL_MAX_PX = 200, 400  # the largest CSS size of an image on a wide screen; originals' box at most


def test_split(sets: dict):
    """The split whose test part the study's test images come from: the one every condition's teaching
    set was made with (sets without one, made under the paper's protocol, leave every image eligible)."""
    from ..data.splits import Split

    splits = {json.dumps(Split.from_record(ts.dataset.get("split")).record(), sort_keys=True) for ts in sets.values()}
    if len(splits) > 1:
        raise TeachsetError("the conditions' teaching sets were made from different train/test splits; make them all from "
                            "one split, so that no test image was seen by any method")
    return Split.from_record(next(iter(sets.values())).dataset.get("split"))


def _png(image: np.ndarray, size: int | None, nonce: bool = False) -> bytes:
    """One uint8 (C, H, W) image as a PNG of size x size (bicubic up, Lanczos down; None: as it is);
    with `nonce`, a random text chunk makes the file differ from every other file of the same pixels."""
    from PIL import PngImagePlugin

    from ..imaging import resized, to_pil

    picture = to_pil(image) if size is None else resized(to_pil(image), size)
    info = PngImagePlugin.PngInfo()
    if nonce:
        info.add_text("n", secrets.token_hex(8))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def _size_warnings(sets: dict, size: int) -> list[str]:
    found = []
    for name, ts in sets.items():
        own = int(ts.images.shape[-1])
        if own < size:
            found.append(f"condition '{name}' has {own} px teaching images, shown at {size} px beside test images "
                         f"loaded at {size} px: they are enlarged and look blurrier; leave image_size out to show "
                         f"every image at {own} px")
        elif own > size:
            found.append(f"condition '{name}' has {own} px teaching images; they are reduced to the study's {size} px")
    return found


def parse_display(display) -> tuple[str | int, dict[str, str | int]]:
    """'working', 'original', a size in pixels, or a list of those and 'NAME=MODE' texts -> (the
    study's mode: test images and every condition not named, {condition: a mode of its own})."""
    values = [display] if isinstance(display, (str, int)) else list(display or ())
    study, own = None, {}
    for value in values:
        name, sep, text = str(value).rpartition("=")
        mode = _display_mode(text)
        if sep:
            own[name] = mode
        elif study not in (None, mode):
            raise OptionError("display", f"{{option}} is given twice for the study ({study}, {mode}); give it once, and "
                              "NAME=MODE for a condition of its own")
        else:
            study = mode
    return ("working" if study is None else study), own


def _display_mode(text: str) -> str | int:
    text = text.strip().lower()
    if text in DISPLAY_MODES:
        return text
    if text.isdigit() and DISPLAY_SIZES[0] <= int(text) <= DISPLAY_SIZES[1]:
        return int(text)
    raise OptionError("display", f"{{option}} '{text}' is not working, original or a size in pixels from "
                      f"{DISPLAY_SIZES[0]} to {DISPLAY_SIZES[1]} (e.g. 256)")


def _said(mode) -> str:
    return {"working": "the working size", "original": "the original resolution"}.get(mode, f"{mode} px")


def _display_modes(display, mixed: bool, sets: dict, dataset, working: int) -> dict[str, str | int]:
    """{"": the test images' mode, condition: its teaching images' mode}, checked."""
    study, own = parse_display(display)
    for name, mode in own.items():
        if name not in sets:
            raise OptionError("display", f"{{option}} names condition '{name}', which the study does not have "
                              f"(its conditions: {', '.join(sets)})")
        if mode != study and not mixed:
            raise OptionError("mixed_display", f"condition '{name}' would be shown at {_said(mode)} and the rest at "
                              f"{_said(study)}; a study shows every condition at one resolution unless {{option}} is given")
    modes = {"": study, **{name: own.get(name, study) for name in sets}}
    for name, mode in modes.items():
        if isinstance(mode, int) and mode < working:
            raise OptionError("display", f"{{option}} {mode} is below the working size {working} px; choose {working} or "
                              "more, or image_size to work at a smaller size")
        if mode == "original" and not name and dataset.sources is None:
            raise OptionError("display", f"{{option}} original: dataset '{dataset.name}' keeps no way back to its "
                              "originals; choose working or a size such as 256")
        if mode == "original" and name and sets[name].original_files() is None and not sets[name].sources:
            raise OptionError("display", f"{{option}} original: condition '{name}' has no originals (generated images, or "
                              "a set saved without its sources); choose working or a size such as 256 for every condition")
    return modes


def _size(mode, working: int) -> int | None:
    """The pixel size a mode writes stimuli at (None: each original as it is)."""
    return None if mode == "original" else working if mode == "working" else int(mode)


def _read_pngs(files: list[Path], channels: int) -> list[np.ndarray]:
    from PIL import Image

    arrays = []
    for path in files:
        with Image.open(path) as picture:
            pixels = np.asarray(picture.convert("L" if channels == 1 else "RGB"))
        arrays.append(pixels[None] if pixels.ndim == 2 else np.moveaxis(pixels, -1, 0))
    return arrays


def _display_record(modes: dict, working: int, mixed: bool, originals: list[np.ndarray]) -> dict:
    """What study.json records of the display, with the CSS size of every image on a wide screen
    (the pages never show one larger, and narrower screens smaller)."""
    largest = max((max(p.shape[1:]) for p in originals), default=0)
    css = max(CSS_PX if m == "working" else min(max(CSS_PX, largest), CSS_ORIGINAL_MAX_PX) if m == "original"
              else max(CSS_PX, int(m)) for m in modes.values())
    return {"mode": modes[""] if isinstance(modes[""], str) else "size", "size": _size(modes[""], working),
            "working_size": working, "largest_original": int(largest) or None, "css_px": int(css),
            "resample": "bicubic to enlarge, Lanczos to reduce", "mixed": mixed,
            "conditions": {name: mode for name, mode in modes.items() if name}}


def _checks(settings: StudySettings, dataset, size: int, check_images: str | Path | None, rng,
            originals: bool = False) -> list[dict]:
    """The attention-check stimuli: [{"item", "label", "source_id", "image"}]; with `originals`,
    image checks at their original resolution."""
    n, classes = settings.attention_checks, len(dataset.class_names)
    if n == 0:
        return []
    if settings.check_kind == "instructed":
        order = np.concatenate([rng.permutation(classes) for _ in range(-(-n // classes))])[:n]
        card = np.full((dataset.images.shape[1], size, size), CHECK_GREY, np.uint8)
        return [{"item": k, "label": int(c), "source_id": None, "image": card} for k, c in enumerate(order)]
    if check_images is None:
        raise OptionError("check_images", "image attention checks need {option}: a folder with one sub-folder of "
                          "unambiguous images per class")
    from ..data import load_dataset

    found = load_dataset(str(check_images), image_size=size, channels=(dataset.spec or {}).get("channels"))
    unknown = sorted(set(found.class_names) - set(dataset.class_names))
    if unknown:
        raise OptionError("check_images", f"{{option}} has sub-folders {unknown} that are not classes of the dataset "
                          f"({', '.join(dataset.class_names)})")
    if len(found.labels) < n:
        raise OptionError("check_images", f"{{option}} holds {len(found.labels)} images, fewer than the "
                          f"{n} attention checks; add images or ask for fewer checks")
    if found.images.shape[1] != dataset.images.shape[1]:
        raise OptionError("check_images", "{option} images must have as many colour channels as the dataset's")
    if originals and found.sources:
        from ..data.originals import read_original

        images = [read_original(source, found.spec or {}, found.info) for source in found.sources]
    else:
        images = list(found.images)
    return [{"item": k, "label": dataset.class_names.index(found.class_names[label]), "source_id": found.ids[k],
             "image": images[k]} for k, label in enumerate(found.labels)]


def create_study(name: str, dataset_source: str, conditions: list[tuple[str, Path] | str], out: str | Path | None = None,
                 consent: str | None = None, texts: str | Path | None = None, check_images: str | Path | None = None,
                 overwrite: bool = False, settings: StudySettings | None = None, display="working",
                 mixed_display: bool = False, aids=None, **options) -> StudyDesign:
    """Write a study folder (`out`, default studies/<name>): one condition per teaching set, test
    images drawn from the teaching sets' test split without any teaching image (the same for
    everyone, or a fresh draw per participant). `conditions`: (name, teaching-set folder) pairs or
    'NAME=PATH' texts; `settings` (or its fields as keyword `options`): settings.py; `texts`: a
    Markdown file of texts (texts.py; missing sections get the default), `consent`: its consent
    text instead; `check_images`: the folder of image attention checks. `display`: 'working',
    'original' or a size in pixels, or a list with 'NAME=MODE' entries for conditions of their own
    (only with `mixed_display`); `aids`: 'NAME' or 'NAME=EXPLANATIONS_FOLDER' texts (aids.py). The
    study's warnings are in the returned design's `notes`."""
    from ..data import load_dataset
    from ..teaching_set import TeachingSet

    settings = settings or build(StudySettings, options, "a study")
    out = Path(out) if out is not None else study_folder(name)
    conditions = [parse_condition(c) if isinstance(c, str) else c for c in conditions]
    if not name.strip() or len(name) > 200:
        raise OptionError("name", "{option} must be 1-200 characters; give the study a short title")
    if len(conditions) < 1:
        raise OptionError("condition", "a study needs at least one {option} (two or more to compare teaching sets)")
    names = [c for c, _ in conditions]
    if len(set(names)) != len(names):
        raise TeachsetError(f"condition names must differ; got {names}")
    if overwrite and (out / DEFAULT_DATABASE_FILE).exists():
        raise OptionError("overwrite", f"'{out}' holds responses ({DEFAULT_DATABASE_FILE}); {{option}} would delete "
                          "them: move the file away or write the study to another folder")
    aid_folders = parse_aids(aids, names)
    sets = {cname: TeachingSet.load(folder) for cname, folder in conditions}
    first = next(iter(sets.values()))
    size = settings.image_size or int(first.images.shape[-1])
    channels = (first.dataset.get("spec") or {}).get("channels")
    dataset = load_dataset(dataset_source, image_size=size, channels=channels)
    modes = _display_modes(display, mixed_display, sets, dataset, size)
    warnings = _size_warnings({c: ts for c, ts in sets.items() if modes[c] != "original"}, size)
    warnings += [f"condition '{c}' is shown at {_said(m)}, the test images at {_said(modes[''])} (mixed display, "
                 "chosen explicitly)" for c, m in modes.items() if c and m != modes[""]]
    aid_strips = {cname: read_aid(cname, sets[cname], folder) for cname, folder in aid_folders.items()}

    teaching_ids: set[str] = set()
    for cname, ts in sets.items():
        if list(ts.class_names) != list(dataset.class_names):
            raise TeachsetError(
                f"condition '{cname}' has classes {ts.class_names} but dataset '{dataset.name}' has "
                f"{dataset.class_names}; give the dataset the teaching set was made from"
            )
        if ts.source_ids is not None:
            ids = {i for i in ts.source_ids if i is not None}
            if ids and not ids & set(dataset.ids):
                raise TeachsetError(
                    f"none of condition '{cname}''s teaching images are in dataset '{dataset.name}'; "
                    "give the dataset the teaching set was made from"
                )
            teaching_ids |= ids
    class_names = list(dataset.class_names)
    text_defaults = default_texts(settings, class_names)
    study_texts = read_texts(texts, class_names, text_defaults) if texts is not None else None
    sections = {**(study_texts.sections if study_texts else text_defaults), **({"consent": consent} if consent else {})}

    split = test_split(sets)
    test_part = set(split.indices(dataset.labels, dataset.groups, dataset.class_names)[1].tolist())
    # also by pixels: a teaching image that is a dataset image under no recorded id must not be a test image
    taught_pixels = {image.tobytes() for ts in sets.values() for image in ts.images if image.shape == dataset.images.shape[1:]}
    eligible = np.array([i for i, image_id in enumerate(dataset.ids) if i in test_part and image_id not in teaching_ids
                         and dataset.images[i].tobytes() not in taught_pixels], dtype=np.int64)
    test_images = settings.test_images
    if test_images > len(eligible):
        raise OptionError(
            "test_images", f"{{option}} {test_images} is more than the {len(eligible)} images of the dataset's test split "
            "outside the teaching sets; ask for fewer"
        )
    rng = np.random.default_rng(settings.seed)
    if settings.per_participant_test:
        # a pool of up to 10x the per-participant count; each participant draws test_images of it
        pool = rng.permutation(eligible)[: PER_PARTICIPANT_POOL_FACTOR * test_images]
    else:
        pool = rng.choice(eligible, size=test_images, replace=False)
    test_size = _size(modes[""], size)
    if test_size is None:
        from ..data.originals import read_original

        pictures = {int(i): read_original(dataset.sources[i], dataset.spec or {}, dataset.info) for i in pool}
    else:
        pictures = {int(i): dataset.images[i] for i in pool}
    card = test_size or max(max(p.shape[1:]) for p in pictures.values())
    checks = _checks(settings, dataset, card, check_images, rng, originals=test_size is None)
    originals_shown = [] if test_size else list(pictures.values())

    with atomic_dir(out, overwrite=overwrite) as tmp:
        (tmp / "stimuli").mkdir()

        def stimulus(image: np.ndarray, nonce: bool = False, size: int | None = test_size, **record) -> dict:
            token = secrets.token_hex(8)
            (tmp / "stimuli" / f"{token}.png").write_bytes(_png(image, size, nonce))
            return {"token": token, **record}

        test_items = [stimulus(pictures[int(i)], item=int(i), label=int(dataset.labels[i]), source_id=dataset.ids[i])
                      for i in pool]
        check_items = [stimulus(c.pop("image"), nonce=True, **c) for c in checks]
        condition_meta, aid_meta = [], {}
        for cname, ts in sets.items():
            source, originals = str(Path(ts.path or "").resolve()), ts.original_files()
            copy = tmp / "conditions" / cname
            ts.save(copy)
            teach_size = _size(modes[cname], size)
            images = list(ts.images)
            if teach_size is None:  # the originals, exported into the study's copy of the set where it has none
                if originals:
                    shutil.copytree(originals[0].parents[1], copy / "originals")
                else:
                    ts.export_originals()
                images = _read_pngs(ts.original_files(), ts.images.shape[1])
                originals_shown += images
            teach, quiz = [], []
            for k in range(len(ts)):
                record = {"item": k, "label": int(ts.labels[k]), "source_id": ts.source_ids[k] if ts.source_ids else None}
                teach.append(stimulus(images[k], size=teach_size, **record))
                quiz.append(stimulus(images[k], nonce=True, size=teach_size, **record))  # same pixels, never the same file
            condition_meta.append({"name": cname, "folder": f"conditions/{cname}", "method": ts.method, "source": source,
                                   "source_size": int(ts.images.shape[-1]), "display": modes[cname],
                                   "teach": teach, "quiz": quiz})
            if cname in aid_strips:
                folder, strips = aid_strips[cname]
                shutil.copytree(folder, copy / AID_FOLDER, dirs_exist_ok=True)
                aid_meta[cname] = {"source": str(folder.resolve()), "folder": f"conditions/{cname}/{AID_FOLDER}", "strips": [
                    {"item": a["item"], "to": a["to"], "probabilities": a["probabilities"],
                     "frames": [stimulus(f, size=teach_size and teach_size * f.shape[-1] // ts.images.shape[-1])["token"]
                                for f in a["frames"]]} for a in strips]}
        meta = {
            "format": FORMAT,
            "uid": uuid.uuid4().hex,
            "name": name,
            "seed": settings.seed,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "code_version": __version__,
            "dataset": dataset.record(),
            "test_split": split.record(),
            "class_names": class_names,
            "image_size": test_size or card,
            "display": _display_record(modes, size, mixed_display, originals_shown),
            "test": {"mode": "per_participant" if settings.per_participant_test else "shared", "count": test_images,
                     "pool": test_items},
            "checks": {"kind": settings.check_kind, "items": check_items,
                       "source": str(Path(check_images).resolve()) if check_images and checks else None},
            "conditions": condition_meta,
            "aids": aid_meta,
            "settings": settings.record(),
            "warnings": warnings,
        }
        write_json(tmp / STUDY_FILE, meta)
        written = StudyTexts(sections, ()).markdown()
        parse_texts(written, class_names, f"the texts of '{name}'")  # the consent given, checked like the rest
        atomic_write_text(tmp / TEXTS_FILE, written)
    # after publishing the folder (which gives its files the usual modes): readable by the owner only
    fd = os.open(out / SECRETS_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"participant_key": secrets.token_hex(32), "dashboard_token": secrets.token_urlsafe(24)}, f)
    return load_study(out)
