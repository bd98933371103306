"""Experiment files: a grid of datasets x extractors x methods x per-class counts x seeds, in TOML.

    name = "solar cells"
    seeds = 5                          # or a list: [0, 1, 2]
    per_class = [5, 10]
    extractors = ["mobilenet_v2"]      # the teachers' and students' extractor(s)

    [[datasets]]
    source = "elpv"                    # a bundled name, a folder of class folders, or a CSV manifest
    size = 64
    generator = "teachset:elpv-64"     # a checkpoint, "train" (trained on the train split), or none

    [[methods]]
    name = "kcenters"

    [[methods]]
    name = "latent"
    label = "latent-nn"                # how the grid names it (default: the name)
    student = "nn"

    # proxy = "studies/cells/calibration/proxy.json"   a calibrated proxy: every set is also scored by the
    #                                                   accuracy it predicts for people; a teacher takes
    #                                                   proxy = "..." among its parameters to teach against it

The whole file is checked before any work: an unknown key, dataset, method or parameter gets one
line naming it and what is allowed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .. import defaults
from ..data import BUNDLED
from ..data.splits import Split
from ..errors import TeachsetError
from ..features import EXTRACTORS

TOP_KEYS = {"name", "seeds", "per_class", "extractors", "transfer", "realism", "students", "protocol", "test_fraction",
            "split_seed", "generator_minutes", "explain", "datasets", "methods", "proxy"}
DATASET_KEYS = {"source", "size", "classes", "channels", "skip_bad", "generator", "label"}
GENERATED = ("latent", "pixels", "gtn")


@dataclass(frozen=True)
class DatasetSpec:
    source: str
    size: int = defaults.IMAGE_SIZE
    classes: tuple[str, ...] | None = None
    channels: str | None = None
    skip_bad: bool = False
    generator: str | None = None  # a checkpoint, a bundled "teachset:NAME", "train", or None
    label: str = ""

    def load_args(self) -> dict:
        return {"source": self.source, "image_size": self.size, "channels": self.channels, "skip_bad": self.skip_bad,
                "classes": list(self.classes) if self.classes else None}


@dataclass(frozen=True)
class MethodSpec:
    name: str
    label: str
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Cell:
    """One teaching set of the grid: made, evaluated and stored as a unit."""

    dataset: str
    extractor: str
    method: str
    per_class: int
    seed: int

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.extractor}/{self.method}/{self.per_class}/{self.seed}"


@dataclass(frozen=True)
class Experiment:
    name: str
    datasets: tuple[DatasetSpec, ...]
    methods: tuple[MethodSpec, ...]
    seeds: tuple[int, ...] = tuple(range(defaults.REPEATS))
    per_class: tuple[int, ...] = (defaults.PER_CLASS,)
    extractors: tuple[str, ...] = (defaults.EXTRACTOR,)
    transfer: tuple[str, ...] = defaults.TRANSFER_EXTRACTORS
    realism: str = defaults.REALISM_EXTRACTOR
    students: tuple[str, ...] = defaults.STUDENTS
    split: Split = Split()
    generator_minutes: float = 30.0
    explain: bool = False  # counterfactual strips for each method's first set (where the dataset has a generator)

    def canonical(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self), sort_keys=True))

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.canonical(), sort_keys=True).encode()).hexdigest()[:16]

    def cells(self) -> list[Cell]:
        return [Cell(d.label, e, m.label, k, s) for d in self.datasets for e in self.extractors for m in self.methods
                for k in self.per_class for s in self.seeds]

    def dataset(self, label: str) -> DatasetSpec:
        return next(d for d in self.datasets if d.label == label)

    def method(self, label: str) -> MethodSpec:
        return next(m for m in self.methods if m.label == label)


def _fail(where: str, message: str):
    raise TeachsetError(f"{where}: {message}")


def _ints(value, where: str, count_means_range: bool) -> tuple[int, ...]:
    """A list of whole numbers; one number N means 0..N-1 (seeds) or just N (per-class counts)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = list(range(value)) if count_means_range else [value]
    values = value
    if not isinstance(values, list) or not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        _fail(where, f"give a whole number or a list of whole numbers, not {value!r}")
    return tuple(values)


def _strings(value, where: str, allowed=None) -> tuple[str, ...]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        _fail(where, f"give a name or a list of names, not {value!r}")
    for v in values:
        if allowed is not None and v not in allowed:
            _fail(where, f"unknown '{v}'; choose from: {', '.join(allowed)}")
    return tuple(values)


def build_experiment(values: dict, where: str = "experiment", base: Path | None = None) -> Experiment:
    """An Experiment from a parsed TOML table, every part checked (paths relative to `base`)."""
    from ..methods import METHODS, make_method

    unknown = sorted(set(values) - TOP_KEYS)
    if unknown:
        _fail(where, f"unknown key '{unknown[0]}'; the keys are: {', '.join(sorted(TOP_KEYS))}")
    datasets = []
    for i, table in enumerate(values.get("datasets") or _fail(where, "list at least one [[datasets]] table")):
        at = f"{where}, datasets[{i}]"
        if not isinstance(table, dict):
            _fail(at, "each [[datasets]] entry is a table with a source")
        bad = sorted(set(table) - DATASET_KEYS)
        if bad:
            _fail(at, f"unknown key '{bad[0]}'; a dataset takes: {', '.join(sorted(DATASET_KEYS))}")
        source = table.get("source") or _fail(at, "give its source: a bundled name, a folder or a CSV manifest")
        if source not in BUNDLED:
            path = Path(source) if base is None or Path(source).is_absolute() else base / source
            if not path.exists():
                _fail(at, f"'{source}' is neither a bundled dataset ({', '.join(BUNDLED)}) nor an existing folder or CSV file")
            source = str(path.resolve())
        generator = table.get("generator")
        if generator not in (None, "train") and not str(generator).startswith("teachset:"):
            path = Path(generator) if base is None or Path(generator).is_absolute() else base / generator
            generator = str(path.resolve()) if path.exists() else _fail(at, f"generator '{generator}' does not exist; give a "
                                                                              "checkpoint folder, teachset:NAME or \"train\"")
        classes = table.get("classes")
        datasets.append(DatasetSpec(source, int(table.get("size", defaults.IMAGE_SIZE)),
                                    _strings(classes, f"{at}, classes") if classes else None, table.get("channels"),
                                    bool(table.get("skip_bad", False)), generator,
                                    table.get("label") or Path(str(table["source"])).stem))
    labels = [d.label for d in datasets]
    if len(set(labels)) < len(labels):
        _fail(where, f"two datasets are both labelled '{next(x for x in labels if labels.count(x) > 1)}'; give each a label")
    methods = []
    for i, table in enumerate(values.get("methods") or _fail(where, "list at least one [[methods]] table")):
        at = f"{where}, methods[{i}]"
        params = dict(table)
        name = params.pop("name", None) or _fail(at, f"give the method's name: one of {', '.join(METHODS)}")
        if name not in METHODS:
            _fail(at, f"unknown method '{name}'; choose one of: {', '.join(METHODS)}")
        label = params.pop("label", name)
        if params.get("proxy"):
            params["proxy"] = _proxy_path(params["proxy"], at, base)
        try:  # every parameter checked now (a generator is given per dataset, later)
            make_method(name, **params)
        except TeachsetError as error:
            _fail(at, str(error))
        if name == "latent" and "generator" not in params and not all(d.generator for d in datasets):
            _fail(at, "the latent teacher needs a generator: give generator = ... (a checkpoint or \"train\") for every dataset")
        methods.append(MethodSpec(name, label, params))
    method_labels = [m.label for m in methods]
    if len(set(method_labels)) < len(method_labels):
        _fail(where, "two methods have the same label; give each a label = \"...\"")
    split_values = {k: values[k] for k in ("protocol", "test_fraction", "split_seed") if k in values}
    try:
        split = Split(**split_values)
    except TeachsetError as error:
        _fail(where, str(error))
    proxy = (f"proxy:{_proxy_path(values['proxy'], where, base)}",) if values.get("proxy") else ()
    return Experiment(
        name=str(values.get("name") or datasets[0].label), datasets=tuple(datasets), methods=tuple(methods),
        seeds=_ints(values.get("seeds", defaults.REPEATS), f"{where}, seeds", count_means_range=True),
        per_class=_ints(values.get("per_class", defaults.PER_CLASS), f"{where}, per_class", count_means_range=False),
        extractors=_strings(values.get("extractors", [defaults.EXTRACTOR]), f"{where}, extractors", list(EXTRACTORS)),
        transfer=_strings(values.get("transfer", list(defaults.TRANSFER_EXTRACTORS)), f"{where}, transfer", list(EXTRACTORS)),
        realism=_strings(values.get("realism", defaults.REALISM_EXTRACTOR), f"{where}, realism", list(EXTRACTORS))[0],
        students=_strings(values.get("students", list(defaults.STUDENTS)), f"{where}, students", list(defaults.STUDENTS))
        + proxy,
        split=split, generator_minutes=float(values.get("generator_minutes", 30.0)), explain=bool(values.get("explain", False)))


def _proxy_path(value, where: str, base: Path | None) -> str:
    """A calibrated proxy's proxy.json, absolute (so that every worker finds it) and checked."""
    from ..proxy import load_proxy

    if not isinstance(value, str):
        _fail(where, f"proxy must be the path of a proxy.json, not {value!r}")
    path = Path(value) if base is None or Path(value).is_absolute() else base / value
    try:
        load_proxy(path)
    except TeachsetError as error:
        _fail(where, str(error))
    return str(path.resolve())


def load_experiment(path: str | Path) -> Experiment:
    """An experiment file, parsed and checked whole before any work."""
    path = Path(path)
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TeachsetError(f"experiment file '{path}' does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise TeachsetError(f"experiment file '{path}' is not valid TOML ({error}); fix it and run again") from None
    return build_experiment(values, where=str(path), base=path.parent)


# The paper's teacher (Doron et al.): one proxy student, no realism term, nothing averaged.
PAPER_TEACHER = {"extractors": [], "views": 0, "anchor_weight": 0.0, "prior_weight": 0.0, "start": "prior"}
PRESETS = {"latent-lc": {"name": "latent", "student": "lc", **PAPER_TEACHER},
           "latent-nn": {"name": "latent", "student": "nn", **PAPER_TEACHER}}


def method_table(label: str, **params) -> dict:
    """The [[methods]] table of a method or preset name: a registered method, or latent-lc / latent-nn
    (the paper's teacher against one proxy student)."""
    return {"label": label, **PRESETS.get(label, {"name": label}), **params}


def dataset_experiment(source: str, *, size: int = defaults.IMAGE_SIZE, classes: list[str] | str | None = None,
                       channels: str | None = None, skip_bad: bool = False, generator: str | None = None,
                       no_generator: bool = False, methods: list[str] | None = None, teacher_epochs: int | None = None,
                       per_class: int = defaults.PER_CLASS, seeds: int = defaults.REPEATS, split: Split = Split(),
                       generator_minutes: float = 30.0, explain: bool = False, proxy: str | None = None) -> Experiment:
    """The whole protocol on one dataset: every selection method, and with a generator (the one
    given, the one bundled for the dataset, or one trained on its train split) the latent teacher;
    with a calibrated `proxy`, the latent teacher against it too (latent-proxy), and every set scored
    by the accuracy the proxy predicts for people."""
    from ..generators import bundled_generators
    from ..methods import method_names

    if no_generator:
        generator = None
    elif generator is None:
        generator = f"teachset:{source}-{size}" if f"{source}-{size}" in bundled_generators() else "train"
    names = methods or [*method_names("selection"), *(["latent"] if generator else [])]
    epochs = {} if teacher_epochs is None else {"epochs": teacher_epochs}
    tables = [method_table(n, **(epochs if method_table(n)["name"] in ("latent", "pixels") else {})) for n in names]
    if proxy and generator:
        tables.append(method_table("latent-proxy", name="latent", proxy=proxy, **epochs))
    if isinstance(classes, str):
        classes = [c.strip() for c in classes.split(",")]
    dataset = {"source": source, "size": size, "channels": channels, "skip_bad": skip_bad,
               **({"classes": classes} if classes else {}), **({"generator": generator} if generator else {})}
    return build_experiment({"datasets": [dataset], "methods": tables, "seeds": seeds, "per_class": per_class,
                             "generator_minutes": generator_minutes, "explain": explain, **split.record(),
                             **({"proxy": proxy} if proxy else {})}, where=str(source))


def experiment_from_record(record: dict) -> Experiment:
    """The Experiment a run recorded (experiment.json)."""
    split = Split(**record["split"])
    return Experiment(name=record["name"], datasets=tuple(DatasetSpec(**{**d, "classes": tuple(d["classes"]) if d["classes"] else None})
                                                          for d in record["datasets"]),
                      methods=tuple(MethodSpec(**m) for m in record["methods"]), seeds=tuple(record["seeds"]),
                      per_class=tuple(record["per_class"]), extractors=tuple(record["extractors"]),
                      transfer=tuple(record["transfer"]), realism=record["realism"], students=tuple(record["students"]), split=split,
                      generator_minutes=record["generator_minutes"], explain=record.get("explain", False))
