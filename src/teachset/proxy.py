"""A calibrated proxy: a model of how people answer after seeing a teaching set, fitted to a study's
answers by `teachset study calibrate` (study/calibrate.py) and taught against with `--proxy proxy.json`
(teach, evaluate, run).

After the teaching set T, the probability of answer a to an image x is

    P(a | x, T) = (1 - lapse) * softmax(s(x; T) / temperature)_a + lapse / C

where s are the class scores of a head on the frozen features of one extractor:
- nn: the NN student's similarities to the teaching images (similarity cosine or euclidean; rule
  logsumexp, max or mean; teachset.students.prototype), divided by the temperature;
- lc: the logits of the LC student trained on T; the temperature only calibrates their confidence;
- chance: every answer at random (lapse 1), what calibration writes when no proxy predicted the
  participants better than chance.
The lapse is the share of answers given at random. A learned proxy first maps the features with a
low-rank affine map fitted to the answers, f -> f + ((f - mean) W_in) W_out^T (`map`).

proxy.json holds {"format": "teachset.proxy/1", "proxy": the fields below, "scores": its
cross-validated scores, ...}; a map is in the .npz file it names beside it. A proxy can also be
written as text, EXTRACTOR:HEAD[:name=value,...], e.g. `alexnet:nn:temperature=0.3,lapse=0.1`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import defaults
from .atomic import atomic_write_bytes, write_json
from .errors import OptionError, TeachsetError
from .options import build, check_fields, option
from .students import LinearStudent, class_scores
from .students.prototype import RULES, SIMILARITIES
from .teaching_data import TeachingData

FORMAT = "teachset.proxy/1"
FILE = "proxy.json"
MAP_FILE = "proxy_map.npz"
HEADS = ("nn", "lc", "chance")


@dataclass(frozen=True, eq=False)
class ProxySpec:
    extractor: str = option(defaults.EXTRACTOR, "the frozen feature extractor")
    head: str = option("nn", "nn (similarities to the teaching images), lc (a linear student trained on them) or "
                       "chance (every answer at random)", choices=HEADS)
    similarity: str = option(defaults.NN_SIMILARITY, "nn: similarity between features", choices=SIMILARITIES)
    rule: str = option(defaults.NN_RULE, "nn: how a class's teaching images combine", choices=RULES)
    temperature: float = option(defaults.NN_TEMPERATURE, "the class scores are divided by it", above=0)
    lapse: float = option(0.0, "the share of answers given at random", minimum=0)
    l2: float = option(defaults.LC_L2, "lc: the student's L2 penalty", above=0)
    input_size: int | None = option(None, "the extractor's input size (None: the images' own)", minimum=8)
    map: dict | None = None  # {"mean": (d,), "w_in": (d, r), "w_out": (d, r)}: the learned low-rank map
    source: str | None = None  # the proxy.json it was read from
    sha256: str | None = None  # of that file
    scores: dict | None = None  # its cross-validated scores, as calibration wrote them

    def __post_init__(self):
        check_fields(self)
        if self.lapse > 1:
            raise OptionError("lapse", "{option} is a share of the answers: at most 1")

    @property
    def student(self) -> str:
        """The teacher's student kind that matches this head."""
        return "lc" if self.head == "lc" else "nn"

    @property
    def rank(self) -> int:
        return 0 if self.map is None else int(self.map["w_in"].shape[1])

    @property
    def name(self) -> str:
        if self.head == "chance":
            return "chance (every answer at random)"
        head = "LC" if self.head == "lc" else f"NN {self.similarity} {self.rule}"
        learned = f" + learned rank-{self.rank} map" if self.map is not None else ""
        return f"{self.extractor}{learned} {head}, temperature {self.temperature:.3g}, lapse {self.lapse:.3f}"

    def fields(self) -> dict:
        """The parameters as proxy.json records them (the map as the name of its file)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.metadata.get("help")}
        return {**values, "map": MAP_FILE if self.map is not None else None}

    def record(self) -> dict:
        """What a teaching set made against this proxy, or scored by it, records about it."""
        return {"name": self.name, "file": self.source, "sha256": self.sha256, **self.fields(),
                "map_rank": self.rank, "scores": self.scores}

    # ---- predictions ----------------------------------------------------------------------------

    def mapped(self, features: np.ndarray) -> np.ndarray:
        """The features the head sees: `features` through the learned map, if any (float64)."""
        f = np.asarray(features, dtype=np.float64)
        if self.map is None:
            return f
        return f + ((f - self.map["mean"]) @ self.map["w_in"]) @ self.map["w_out"].T

    def probabilities(self, teach_features, teach_labels, features, num_classes: int) -> np.ndarray:
        """(n, C): the probability of each answer to each image of `features` after the teaching set
        (`teach_features`, `teach_labels`), lapse included. Features are the extractor's own."""
        n = len(features)
        if self.head == "chance":
            return np.full((n, num_classes), 1.0 / num_classes)
        teach, seen = self.mapped(teach_features), self.mapped(features)
        if self.head == "lc":
            scores = LinearStudent(l2=self.l2).fit(teach, teach_labels, num_classes).decision_function(seen)
            scores = torch.from_numpy(scores) / self.temperature
        else:
            scores = class_scores(torch.from_numpy(seen), torch.from_numpy(teach),
                                  torch.as_tensor(np.asarray(teach_labels), dtype=torch.long), num_classes,
                                  similarity=self.similarity, temperature=self.temperature, rule=self.rule)
        p = torch.softmax(scores, dim=1).numpy()
        return (1 - self.lapse) * p + self.lapse / num_classes

    def predicted_accuracy(self, teach_features, teach_labels, features, labels, num_classes: int) -> float:
        """The accuracy people are predicted to reach on these images: the mean probability of the right answer."""
        p = self.probabilities(teach_features, teach_labels, features, num_classes)
        return float(p[np.arange(len(p)), np.asarray(labels)].mean())

    # ---- teaching against it --------------------------------------------------------------------

    def space(self, data: TeachingData) -> TeachingData:
        """`data`'s dataset in this proxy's feature space (its own features when they are already those)."""
        if (data.extractor, data.input_size) == (self.extractor, self.input_size):
            return data
        return TeachingData.load(data.dataset, self.extractor, self.input_size, progress=False)

    def teacher_space(self, data: TeachingData) -> tuple[list[torch.nn.Module], list[np.ndarray]]:
        """The one network and features a teacher teaches this proxy's student through (the map applied)."""
        if self.head == "chance":
            raise OptionError("proxy", "the calibrated {option} answers at random: no proxy predicted the study's "
                              "participants better than chance, so there is nothing to teach against")
        space = self.space(data)
        if self.map is None:
            return [space.network], [space.features]
        return [MappedExtractor(space.network, self.map)], [self.mapped(space.features).astype(np.float32)]


class MappedExtractor(torch.nn.Module):
    """A frozen extractor followed by a proxy's learned low-rank map (differentiable in the images)."""

    def __init__(self, network: torch.nn.Module, found: dict):
        super().__init__()
        self.network, self.name = network, getattr(network, "name", "mapped")
        for key in ("mean", "w_in", "w_out"):
            self.register_buffer(key, torch.as_tensor(found[key], dtype=torch.float32))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        f = self.network(images)
        return f + ((f - self.mean) @ self.w_in) @ self.w_out.T


# ---- reading and writing ------------------------------------------------------------------------

def parse_proxy(text: str, image_size: int | None = None) -> ProxySpec:
    """A proxy from text: a proxy.json (or its folder), 'chance', or EXTRACTOR:HEAD[:name=value,...]; the
    input size defaults to the one second networks see images of `image_size` at."""
    from .features import EXTRACTORS

    path = Path(text)
    if text.endswith(".json") or path.is_dir():
        return load_proxy(path)
    if text == "chance":
        return ProxySpec(head="chance", lapse=1.0)
    parts = text.split(":", 2)
    if len(parts) < 2 or parts[0] not in EXTRACTORS:
        raise OptionError("proxy", f"{{option}} '{text}' is neither a proxy.json nor EXTRACTOR:HEAD[:name=value,...] "
                          f"with an extractor of {', '.join(EXTRACTORS)}; e.g. alexnet:nn:temperature=0.3,lapse=0.1")
    values: dict = {"extractor": parts[0], "head": parts[1]}
    for pair in (parts[2].split(",") if len(parts) == 3 and parts[2] else []):
        name, sep, value = pair.partition("=")
        if not sep or name not in [f.name for f in dataclasses.fields(ProxySpec) if f.metadata.get("help")]:
            raise OptionError("proxy", f"{{option}}: '{pair}' is not NAME=VALUE for one of similarity, rule, "
                              "temperature, lapse, l2, input_size")
        values[name] = None if value == "none" else value
    if "input_size" not in values and image_size is not None:
        values["input_size"] = defaults.network_input_size(parts[0], image_size)
    return build(ProxySpec, values, "a proxy")


def load_proxy(path: str | Path) -> ProxySpec:
    """The proxy of a proxy.json (or of the folder holding one), its map and scores included."""
    path = Path(path)
    path = path / FILE if path.is_dir() else path
    try:
        data = path.read_bytes()
        found = json.loads(data)
    except OSError:
        raise OptionError("proxy", f"{{option}} '{path}' cannot be read; give the proxy.json that `teachset study "
                          "calibrate` wrote") from None
    except ValueError as error:  # not JSON, or not text
        raise TeachsetError(f"'{path}' is not valid JSON ({error}); calibrate again") from None
    if not isinstance(found, dict) or found.get("format") != FORMAT:
        raise TeachsetError(f"'{path}' is not a calibrated proxy (format {FORMAT}); make one with `teachset study "
                            "calibrate STUDY`")
    fields = _checked_fields(found.get("proxy"), path)
    map_file = fields.pop("map", None)
    arrays = None
    if map_file:
        try:
            with np.load(path.parent / Path(map_file).name) as stored:
                arrays = {key: stored[key].astype(np.float64) for key in ("mean", "w_in", "w_out")}
        except (OSError, KeyError, ValueError) as error:
            raise TeachsetError(f"the proxy's map '{path.parent / map_file}' cannot be read ({error}); keep it beside "
                                f"{path.name}, or calibrate again") from None
        d = len(arrays["mean"])
        if arrays["w_in"].shape[0] != d or arrays["w_out"].shape != arrays["w_in"].shape:
            raise TeachsetError(f"the proxy's map '{path.parent / map_file}' has shapes mean {arrays['mean'].shape}, "
                                f"w_in {arrays['w_in'].shape}, w_out {arrays['w_out'].shape}: not one low-rank map; "
                                "calibrate again")
    try:
        return ProxySpec(**fields, map=arrays, source=str(path.resolve()), sha256=hashlib.sha256(data).hexdigest(),
                         scores=found.get("scores") if isinstance(found.get("scores"), dict) else None)
    except TeachsetError as error:
        raise TeachsetError(f"'{path}' is not a valid calibrated proxy: {error}; calibrate again") from None


def _checked_fields(proxy, path: Path) -> dict:
    """proxy.json's "proxy" object, its names and value types checked (one line naming what is wrong)."""
    from .features import EXTRACTORS

    names = [f.name for f in dataclasses.fields(ProxySpec) if f.metadata.get("help")]
    if not isinstance(proxy, dict):
        raise TeachsetError(f"'{path}' has no \"proxy\" object of parameters; calibrate again")
    unknown = sorted(set(proxy) - {*names, "map"})
    missing = [name for name in ("extractor", "head") if name not in proxy]
    if unknown or missing:
        raise TeachsetError(f"'{path}': the proxy has " + (f"an unknown parameter '{unknown[0]}'" if unknown else
                            f"no '{missing[0]}'") + f"; it takes {', '.join(names)} and map; calibrate again")
    kinds = {"temperature": (int, float), "lapse": (int, float), "l2": (int, float), "input_size": (int, type(None)),
             "map": (str, type(None))}
    for name, value in proxy.items():
        wanted = kinds.get(name, (str,))
        if isinstance(value, bool) or not isinstance(value, wanted):
            raise TeachsetError(f"'{path}': the proxy's {name} is {value!r}, not "
                                f"{' or '.join('null' if k is type(None) else k.__name__ for k in wanted)}; calibrate again")
    if proxy["extractor"] not in EXTRACTORS:
        raise TeachsetError(f"'{path}': the proxy's extractor '{proxy['extractor']}' is not one of "
                            f"{', '.join(EXTRACTORS)}; calibrate again")
    return dict(proxy)


def write_proxy(folder: Path, spec: ProxySpec, about: dict) -> Path:
    """proxy.json (and the map's .npz) in `folder`, each written atomically; `about`: what else it records."""
    folder.mkdir(parents=True, exist_ok=True)
    if spec.map is not None:
        buffer = io.BytesIO()
        np.savez(buffer, **spec.map)
        atomic_write_bytes(folder / MAP_FILE, buffer.getvalue())
    write_json(folder / FILE, {"format": FORMAT, "proxy": spec.fields(), "name": spec.name, **about})
    return folder / FILE
