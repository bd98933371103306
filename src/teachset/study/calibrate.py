"""`teachset study calibrate`: which proxy student predicts the study's participants, and by how much.

For every candidate proxy (teachset.proxy: every extractor with weights here x head: LC, NN with
each similarity and rule; each with a fitted temperature and lapse), the probability it gives to
each answer a participant gave, after training on the teaching set that participant saw; and a
learned candidate (a low-rank map of the best extractor's features, fitted to the answers). Fits
and scores are in proxyfit.py: every candidate is fitted by maximum likelihood on the answers of
some participants and scored on the others' (folds of participants), by log-likelihood per answer
and by how often its most probable answer is the one given; beside two baselines, each condition's
mean accuracy and the default proxies (the evaluation's LC and NN at their own temperatures, only
a lapse fitted).

The answers calibrated on are the test answers of the participants the analysis counts (completed,
less the excluded; simulated ones only when asked); attention checks and the quiz (the teaching
images themselves) never count. Features of each stimulus are computed once per extractor and
kept in the feature cache. Writes proxy.json (+ proxy_map.npz for a learned map), report.html,
candidates.csv, images.csv and fig_images.png into STUDY/calibration (or `out`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import defaults
from ..errors import OptionError, TeachsetError
from ..options import check_fields, option
from ..proxy import ProxySpec, write_proxy
from .db import Database, utcnow
from .design import StudyDesign
from .proxyfit import (Answers, Chance, ConditionMean, FixedHead, Learned, PairSpace, Scored, cross_validate, folds_of,
                       select)

MIN_PARTICIPANTS = 5
MIN_ANSWERS = 200


@dataclass
class CalibrateOptions:
    extractors: tuple[str, ...] = option((), "the extractors of the candidates (default: every one whose weights are here)")
    folds: int = option(5, "folds of participants for cross-validation (at most one per participant)", minimum=2)
    rank: int = option(4, "rank of the learned candidate's map (0: no learned candidate)", minimum=0)
    penalty: float = option(1.0, "L2 penalty of the learned map", minimum=0)
    seed: int = option(0, "seeds the folds")
    include_simulated: bool = option(False, "calibrate on simulated participants too (`teachset study simulate`)")
    exclusions: bool = option(True, "leave out the participants the study's exclusion rules leave out")

    def __post_init__(self):
        check_fields(self)


# ---- the answers ---------------------------------------------------------------------------------

@dataclass
class StudyAnswers:
    answers: Answers
    pairs: list[tuple[int, int]]  # (condition index, dataset item) of each pair
    participants: list[str]  # codes, in participant order
    simulated: int  # simulated participants among them
    left_out_simulated: int  # simulated participants not counted


def load_answers(design: StudyDesign, db: Database, options: CalibrateOptions) -> StudyAnswers:
    """The test answers to calibrate on; one line saying how many are needed where they are too few."""
    from .analysis import exclusions
    from .export import load_data

    db.require_schema()
    data = load_data(db, design)
    excluded = {e["participant"] for e in exclusions(design, data)["excluded"]} if options.exclusions else set()
    counted = [p for p in data.participants if p["status"] == "completed" and p["participant"] not in excluded]
    left_out = sum(1 for p in counted if p["simulated"] and not options.include_simulated)
    counted = [p for p in counted if options.include_simulated or not p["simulated"]]
    index = {p["participant"]: i for i, p in enumerate(counted)}
    conditions = {name: i for i, name in enumerate(design.condition_names)}
    trials = [t for t in data.trials if t["participant"] in index and t["phase"] == "test" and not t["check"]]
    if len(counted) < MIN_PARTICIPANTS or len(trials) < MIN_ANSWERS:
        simulated = (f"; {left_out} simulated participant(s) are left out (--include-simulated counts them)"
                     if left_out else "")
        raise TeachsetError(
            f"calibration needs the test answers of at least {MIN_PARTICIPANTS} participants and {MIN_ANSWERS} in all "
            f"(attention checks and the quiz not counted); study '{design.name}' has {len(counted)} participant(s) "
            f"with {len(trials)}{simulated}; collect more answers, or add simulated ones with `teachset study simulate`")
    pairs: dict[tuple[int, int], int] = {}
    pair, answer, who = [], [], []
    for t in trials:
        key = (conditions[t["condition"]], int(t["item"]))
        pair.append(pairs.setdefault(key, len(pairs)))
        answer.append(int(t["answer"]))
        who.append(index[t["participant"]])
    label = {}
    for t in trials:
        label[pairs[(conditions[t["condition"]], int(t["item"]))]] = int(t["label"])
    keys = list(pairs)
    answers = Answers(np.array(pair), np.array(answer), np.array(who), np.array([k[0] for k in keys]),
                      np.array([label[i] for i in range(len(keys))]), len(design.class_names))
    return StudyAnswers(answers, keys, [p["participant"] for p in counted],
                        sum(bool(p["simulated"]) for p in counted), left_out)


# ---- features of the stimuli --------------------------------------------------------------------

def study_dataset(design: StudyDesign):
    """The study's dataset, checked to be the one it was made from."""
    from ..data import load_dataset

    spec = design.dataset["spec"]
    dataset = load_dataset(spec["source"], image_size=spec["image_size"], channels=spec.get("channels"),
                           skip_bad=spec.get("skip_bad", False), classes=spec.get("classes"))
    if dataset.fingerprint != design.dataset["fingerprint"]:
        raise TeachsetError(f"dataset '{spec['source']}' has changed since the study was created (fingerprint "
                            f"{dataset.fingerprint}, study {design.dataset['fingerprint']}); restore it to calibrate")
    return dataset


def available_extractors() -> list[str]:
    """The extractors whose weights are on this machine (a ResNet's only once torch's cache holds them)."""
    import torch

    from .._torchvision import models
    from ..features import EXTRACTORS

    found = []
    for name in EXTRACTORS:
        if name.startswith("resnet"):
            url = getattr(models, f"ResNet{name[6:]}_Weights").IMAGENET1K_V1.url
            if not (Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]).is_file():
                continue
        found.append(name)
    return found


class StimulusFeatures:
    """Features of a study's test images and teaching sets in one extractor, from the feature cache
    (the dataset's whole cache where it has one, else the images asked for, cached as such)."""

    def __init__(self, design: StudyDesign, dataset, extractor: str, input_size: int | None):
        self.design, self.dataset, self.extractor, self.input_size = design, dataset, extractor, input_size
        self._network = None

    def network(self):
        from ..features import build_extractor

        if self._network is None:
            self._network = build_extractor(self.extractor, self.input_size)
        return self._network

    def _cached(self, path: Path, compute) -> np.ndarray:
        from ..features.cache import store_features

        if path.is_file():
            try:
                return np.load(path)
            except (OSError, ValueError):
                pass
        features = compute()
        store_features(path, features)
        return features

    def items(self, items) -> np.ndarray:
        from ..features import extract
        from ..features.cache import cached_features

        items = np.asarray(items, dtype=np.int64)
        path, whole = cached_features(self.dataset, self.extractor, self.input_size)
        if whole is not None:
            return whole[items]
        digest = hashlib.sha1(items.tobytes()).hexdigest()[:16]
        return self._cached(path.with_name(f"{path.stem}-items{digest}.npy"),
                            lambda: extract(self.network(), self.dataset.tensor(items)))

    def teaching(self, condition) -> tuple[np.ndarray, np.ndarray]:
        from ..features import extract
        from ..teaching_set import TeachingSet

        ts = TeachingSet.load(self.design.path / condition.folder)
        digest = hashlib.sha1(ts.images.tobytes()).hexdigest()[:16]
        path = defaults.cache_dir() / "features" / f"teaching-{digest}-{self.extractor}-in{self.input_size}.npy"
        return self._cached(path, lambda: extract(self.network(), ts.tensor())), ts.labels


def pair_space(design: StudyDesign, dataset, extractor: str, input_size: int | None,
               pairs: list[tuple[int, int]]) -> PairSpace:
    found = StimulusFeatures(design, dataset, extractor, input_size)
    items = np.array([item for _, item in pairs])
    teaching = [found.teaching(c) for c in design.conditions]
    return PairSpace(extractor, input_size, found.items(items), [t[0] for t in teaching], [t[1] for t in teaching])


def answer_tables(spec: ProxySpec, design: StudyDesign) -> dict[str, dict[str, list[float]]]:
    """{condition: {stimulus token: the proxy's probability of each answer}} for every quiz and test
    stimulus (what simulated participants answer with)."""
    pool, classes = design.test_pool, len(design.class_names)
    if spec.head == "chance":
        uniform = [1.0 / classes] * classes
        return {c.name: {s.token: uniform for s in [*pool, *c.quiz]} for c in design.conditions}
    found = StimulusFeatures(design, study_dataset(design), spec.extractor, spec.input_size)
    pool_features = found.items([s.item for s in pool])
    tables = {}
    for condition in design.conditions:
        teach, labels = found.teaching(condition)
        quiz = teach[[s.item for s in condition.quiz]]
        p = spec.probabilities(teach, labels, np.concatenate([pool_features, quiz]), classes)
        tokens = [s.token for s in pool] + [s.token for s in condition.quiz]
        tables[condition.name] = {token: row.tolist() for token, row in zip(tokens, p)}
    return tables


# ---- the candidates -----------------------------------------------------------------------------

def head_candidates(space: PairSpace, answers: Answers, template: ProxySpec) -> list[FixedHead]:
    """LC, and NN with each similarity and rule, on one extractor (the NN rules only where some class has
    several teaching images: with one image per class they are the same model)."""
    import torch

    from ..students import LinearStudent, class_scores

    c, conditions = answers.num_classes, answers.pair_condition
    lc = np.empty((len(conditions), c))
    for k, (teach, labels) in enumerate(zip(space.teaching, space.labels)):
        mine = conditions == k
        lc[mine] = LinearStudent(l2=template.l2).fit(teach, labels, c).decision_function(space.pair_features[mine])
    fields = {k: v for k, v in template.fields().items() if k != "map"}
    out = [FixedHead(ProxySpec(**{**fields, "head": "lc"}), base=lc)]
    several = any(np.bincount(labels, minlength=c).max() > 1 for labels in space.labels)
    for similarity in ("cosine", "euclidean"):
        width = max(np.bincount(labels, minlength=c).max() for labels in space.labels)
        groups = np.full((len(conditions), c, width), -np.inf)
        means = np.empty((len(conditions), c))
        for k, (teach, labels) in enumerate(zip(space.teaching, space.labels)):
            mine = np.flatnonzero(conditions == k)
            x, t = torch.from_numpy(space.pair_features[mine].astype(np.float64)), torch.from_numpy(teach.astype(np.float64))
            if similarity == "cosine":
                sims = (torch.nn.functional.normalize(x, dim=1) @ torch.nn.functional.normalize(t, dim=1).T).numpy()
            else:
                sims = -torch.cdist(x, t).pow(2).numpy()
            for cls in range(c):
                members = np.flatnonzero(labels == cls)
                groups[mine[:, None], cls, np.arange(len(members))[None, :]] = sims[:, members]
            means[mine] = class_scores(x, t, torch.from_numpy(labels).long(), c, similarity=similarity, temperature=1.0,
                                       rule="mean").numpy()
        base = {**fields, "head": "nn", "similarity": similarity}
        out.append(FixedHead(ProxySpec(**{**base, "rule": "logsumexp"}), groups=groups))
        if several:
            with np.errstate(invalid="ignore"):
                out.append(FixedHead(ProxySpec(**{**base, "rule": "max"}), base=groups.max(axis=2)))
            out.append(FixedHead(ProxySpec(**{**base, "rule": "mean"}), base=means))
    return out


def default_baselines(space: PairSpace, answers: Answers) -> list[FixedHead]:
    """The evaluation's LC and NN as they are (their own temperatures), only a lapse fitted."""
    template = ProxySpec(extractor=space.extractor, input_size=space.input_size)
    lc, nn = [h for h in head_candidates(space, answers, template)
              if h.template.head == "lc" or (h.template.similarity, h.template.rule) ==
              (defaults.NN_SIMILARITY, defaults.NN_RULE)][:2]
    return [FixedHead(lc.template, base=lc.base, temperature=1.0, kind="baseline", label="default LC"),
            FixedHead(nn.template, base=nn.base, groups=nn.groups, temperature=defaults.NN_TEMPERATURE,
                      kind="baseline", label="default NN")]


@dataclass
class Calibration:
    chosen: Scored
    reason: str
    ranked: list[Scored]  # the candidates, best held-out log-likelihood first
    baselines: list[Scored]
    chance: Scored
    study: StudyAnswers
    extractors: list[str]
    folds: int


def fit_candidates(design: StudyDesign, study: StudyAnswers, options: CalibrateOptions, progress=None) -> Calibration:
    """Every candidate cross-validated, the baselines, the choice."""
    from ..features import EXTRACTORS

    say = progress or (lambda text: None)
    answers = study.answers
    extractors = list(options.extractors) or available_extractors()
    unknown = [e for e in extractors if e not in EXTRACTORS]
    if unknown:
        raise OptionError("extractors", f"{{option}}: unknown extractor '{unknown[0]}'; choose from {', '.join(EXTRACTORS)}")
    folds = min(options.folds, answers.participants)
    fold = folds_of(answers.participants, folds, options.seed)
    dataset = study_dataset(design)
    spaces, scored = {}, []
    for extractor in extractors:
        say(f"features and candidates: {extractor}")
        size = defaults.network_input_size(extractor, dataset.image_size)
        spaces[extractor] = pair_space(design, dataset, extractor, size, study.pairs)
        template = ProxySpec(extractor=extractor, input_size=size)
        scored += [cross_validate(h, answers, fold) for h in head_candidates(spaces[extractor], answers, template)]
    default_space = pair_space(design, dataset, defaults.EXTRACTOR, None, study.pairs)
    baselines = [cross_validate(b, answers, fold) for b in
                 [ConditionMean(answers), *default_baselines(default_space, answers)]]
    chance = cross_validate(Chance(answers), answers, fold)
    chosen, reason = select(scored, chance)
    if options.rank and chosen.candidate.kind == "fixed":
        best = chosen.candidate
        nn = best if best.template.head == "nn" else next(
            s.candidate for s in scored if s.candidate.extractor == best.extractor and s.candidate.template.head == "nn")
        say(f"the learned candidate: a rank-{options.rank} map of {best.extractor}'s features")
        learned = Learned(spaces[best.extractor], answers, nn, rank=options.rank, penalty=options.penalty)
        scored.append(cross_validate(learned, answers, fold))
        chosen, reason = select(scored, chance)
    ranked = sorted([*scored, chance], key=lambda s: -s.log_likelihood)
    return Calibration(chosen, reason, ranked, baselines, chance, study, extractors, folds)


def calibrate(design: StudyDesign, db: Database, out: str | Path | None = None,
              options: CalibrateOptions = CalibrateOptions(), progress=None) -> dict:
    """Calibrate the candidates on `design`'s answers in `db`; writes proxy.json, report.html, candidates.csv,
    images.csv and fig_images.png to `out` (default STUDY/calibration); returns what proxy.json holds."""
    from .calibration_report import summary_of, write_report

    study = load_answers(design, db, options)
    found = fit_candidates(design, study, options, progress)
    out = Path(out) if out is not None else design.path / "calibration"
    about = summary_of(design, db, found, options, utcnow().isoformat(timespec="seconds") + "Z")
    spec = found.chosen.candidate.spec(found.chosen.params)
    write_proxy(out, spec, about)
    write_report(design, found, about, out)
    return {"name": spec.name, "proxy": spec.fields(), **about}

