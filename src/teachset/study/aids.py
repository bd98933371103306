"""Teaching aids: how each teaching image of a condition would look as each other class.

An aid is what `teachset explain` wrote for the condition's teaching set: its explanations/ folder,
explanations.json and one strip of frames per image and target class (the image first, the
counterfactual last). `study create --aid NAME[=FOLDER]` checks it against the set (every image
explained, the classes the set's), copies it into the study (conditions/<name>/explanations/) and
writes every frame as a stimulus under a random token, at the size of the condition's teaching
images. In study.json:

    "aids": {"<condition>": {"source": the folder given, "folder": "conditions/<name>/explanations",
             "strips": [{"item": teaching-set index, "to": class index, "frames": [token, ...],
                         "probabilities": the proxy's probability of the target per frame}]}}

On the teaching page, and in the teaching set reopened during the test, each teaching image of an
aid condition has a button that opens its strips; each opening and closing is an event (open_aid,
close_aid, with how long it was open), like the teaching set's reopenings. `aid_use` is what the
analysis reports of them.

Nothing here imports torch: the server reads the aids without the machine-learning stack.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..errors import OptionError, TeachsetError
from .design import STUDY_FILE, StudyDesign

FOLDER, META_FILE = "explanations", "explanations.json"  # as teachset.explain writes them
PAD = 2  # the white gap around and between a strip's frames (teachset.imaging.image_grid)
AID_EVENTS = ("open_aid", "close_aid")


def parse_aids(values, conditions: list[str]) -> dict[str, Path | None]:
    """'NAME' (the set's own explanations/) or 'NAME=FOLDER' texts, or such a dict -> {condition: folder or None}."""
    if isinstance(values, dict):
        found = {name: None if folder is None else Path(folder) for name, folder in values.items()}
    else:
        found = {}
        for text in values or ():
            name, sep, folder = str(text).partition("=")
            if name in found:
                raise OptionError("aid", f"{{option}} names condition '{name}' twice; give each condition's aid once")
            found[name] = Path(folder) if sep and folder else None
    for name in found:
        if name not in conditions:
            raise OptionError("aid", f"{{option}} names condition '{name}', which the study does not have "
                              f"(its conditions: {', '.join(conditions)}); write NAME or NAME=EXPLANATIONS_FOLDER")
    return found


def read_aid(name: str, teaching_set, folder: Path | None) -> tuple[Path, list[dict]]:
    """The aid folder of condition `name` and its strips, checked against the teaching set:
    [{"item", "to" (class index), "frames": [uint8 (C, H, W)], "probabilities"}]."""
    from PIL import Image

    folder = Path(folder) if folder is not None else Path(teaching_set.path) / FOLDER
    where = f"the aid of condition '{name}' ('{folder}')"
    make = f"make it with 'teachset explain {teaching_set.path} --generator G'"
    try:
        paths = json.loads((folder / META_FILE).read_text())["paths"]
        explained = sorted({int(p["image"]) for p in paths})
    except FileNotFoundError:
        raise TeachsetError(f"{where} has no {META_FILE}; {make}, or give the folder it wrote") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise TeachsetError(f"{where} cannot be read ({type(error).__name__}: {error}); {make} again") from None
    classes, count = list(teaching_set.class_names), len(teaching_set)
    if explained != list(range(count)):
        raise TeachsetError(f"{where} explains {len(explained)} images but the condition's teaching set has {count}; "
                            f"{make} for this teaching set")
    mode = "L" if teaching_set.images.shape[1] == 1 else "RGB"
    strips = []
    for p in sorted(paths, key=lambda p: (int(p["image"]), classes.index(p["to"]) if p["to"] in classes else -1)):
        own = classes[int(teaching_set.labels[int(p["image"])])]
        if p.get("from") != own or p.get("to") not in classes or p["to"] == own:
            raise TeachsetError(f"{where} turns image {p['image']} from {p.get('from')!r} into {p.get('to')!r}, but in the "
                                f"teaching set it is {own!r} of classes {classes}; {make} for this teaching set")
        try:
            with Image.open(folder / p["strip"]) as picture:
                pixels = np.asarray(picture.convert(mode))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise TeachsetError(f"{where}: strip {p.get('strip')!r} cannot be read ({error}); {make} again") from None
        strips.append({"item": int(p["image"]), "to": classes.index(p["to"]), "probabilities": p.get("probabilities"),
                       "frames": split_strip(pixels[None] if pixels.ndim == 2 else np.moveaxis(pixels, -1, 0),
                                             len(p.get("probabilities") or ()), f"{where}: strip {p['strip']!r}")})
    return folder, strips


def split_strip(strip: np.ndarray, frames: int, what: str) -> list[np.ndarray]:
    """The frames of one row of square frames with PAD white pixels around and between them."""
    c, h, w = strip.shape
    side = h - 2 * PAD
    if side > 0 and not frames:
        frames = (w - PAD) // (side + PAD)
    if side <= 0 or frames < 2 or w != frames * (side + PAD) + PAD:
        raise TeachsetError(f"{what} is not one row of square frames as 'teachset explain' writes them; make it again")
    return [strip[:, PAD:PAD + side, PAD + k * (side + PAD):PAD + k * (side + PAD) + side] for k in range(frames)]


def _record(design: StudyDesign) -> dict:
    try:
        return json.loads((design.path / STUDY_FILE).read_text()).get("aids") or {}
    except (OSError, ValueError):
        return {}


def load_aids(design: StudyDesign) -> dict[str, dict[str, list[dict]]]:
    """{condition: {teaching-page token of an image: [{"to": class index, "frames": [token, ...]}]}},
    for the conditions with aids."""
    found = {}
    for name, aid in _record(design).items():
        teach = design.condition(name).teach
        per_image: dict[str, list[dict]] = {}
        for strip in aid["strips"]:
            per_image.setdefault(teach[strip["item"]].token, []).append({"to": strip["to"], "frames": strip["frames"]})
        found[name] = per_image
    return found


def aid_files(design: StudyDesign) -> dict[str, Path]:
    """token -> PNG file, for every frame of every aid."""
    return {token: design.path / "stimuli" / f"{token}.png" for aid in _record(design).values()
            for strip in aid["strips"] for token in strip["frames"]}


def aid_use(design: StudyDesign, data, included: set[str]) -> list[dict]:
    """Per condition with aids, over the included participants: how many opened an aid, openings per
    participant, and test accuracy with and without aids, by participant (those who opened any
    against those who never did) and by trial (test trials during which one was opened, or not)."""
    from .stats import wilson_interval

    rows = []
    for name in load_aids(design):
        people = [p for p in data.participants if p["condition"] == name and p["participant"] in included]
        users = {p["participant"] for p in people if p["aid_openings"]}
        names = {p["participant"] for p in people}
        test = [t for t in data.trials if t["participant"] in names and t["phase"] == "test" and not t["check"]]
        row = {"condition": name, "participants": len(people), "used_aids": len(users),
               "openings_per_participant": float(np.mean([p["aid_openings"] for p in people])) if people else math.nan,
               "seconds_open_per_participant": float(np.mean([p["aid_s"] for p in people])) if people else math.nan}
        groups = {"users": [t for t in test if t["participant"] in users],
                  "non_users": [t for t in test if t["participant"] not in users],
                  "trials_with_aid": [t for t in test if t["aid_opened"]],
                  "trials_without_aid": [t for t in test if not t["aid_opened"]]}
        for group, trials in groups.items():
            correct = sum(t["correct"] for t in trials)
            low, high = wilson_interval(correct, len(trials))
            row |= {f"{group}_trials": len(trials), f"{group}_accuracy": correct / len(trials) if trials else math.nan,
                    f"{group}_low": low, f"{group}_high": high}
        rows.append(row)
    return rows
