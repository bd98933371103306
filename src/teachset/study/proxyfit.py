"""The candidates of `teachset study calibrate`, fitted by maximum likelihood and scored by
cross-validation over participants (arrays only; calibrate.py gathers the answers and features).

Everything a candidate predicts depends only on the pair (condition, test image) an answer is to,
so a fit sees counts per pair and answer, and a candidate's class scores are computed once:
- chance: every answer at random (nothing fitted);
- condition mean: the right answer with the condition's accuracy, the others share the rest (one
  value per condition);
- a fixed head (LC logits, or NN similarities with a rule) on one extractor's features: the
  temperature and the lapse are fitted. For a given temperature the best lapse solves a concave
  problem in one variable (its derivative is monotone: a root search); the temperature is then a
  one-dimensional search, on a grid and then by Brent's method around the best grid point;
- learned: an NN head on features through a low-rank affine map f + ((f - mean) W_in) W_out^T, the
  map (W_in: the top principal directions of the stimuli's features, scaled to unit variance;
  W_out fitted, with an L2 penalty), temperature and lapse fitted together by L-BFGS from the fixed
  head's fit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import optimize
from scipy import stats as scipy_stats
from scipy.special import log_softmax, logsumexp

from ..proxy import ProxySpec
from ..students import class_scores

LOG_T = (np.log(1e-4), np.log(1e2))  # the search range of a temperature, in units of its scores' spread (the
# spread across all pairs is far wider than the gaps between one image's class scores: the range goes low)
GRID = 13  # grid points of that range (log-spaced, 1.15 apart) before Brent's method
LAPSE_FLOOR = 1e-9


@dataclass
class Answers:
    """The answers calibrated on: each to a pair (condition, test image), by a participant."""

    pair: np.ndarray  # (n,) index of the pair answered
    answer: np.ndarray  # (n,) the class chosen
    participant: np.ndarray  # (n,) 0..P-1
    pair_condition: np.ndarray  # (pairs,) condition index of each pair
    pair_label: np.ndarray  # (pairs,) the right answer of each pair
    num_classes: int

    @property
    def participants(self) -> int:
        return int(self.participant.max()) + 1 if len(self.participant) else 0

    def counts(self, mask: np.ndarray | None = None) -> np.ndarray:
        """(pairs, C): how many of the (masked) answers chose each class for each pair."""
        keep = slice(None) if mask is None else mask
        flat = self.pair[keep] * self.num_classes + self.answer[keep]
        return np.bincount(flat, minlength=len(self.pair_label) * self.num_classes).reshape(-1, self.num_classes)


@dataclass
class PairSpace:
    """One extractor's features of each pair's test image and of each condition's teaching images."""

    extractor: str
    input_size: int | None
    pair_features: np.ndarray  # (pairs, d)
    teaching: list[np.ndarray]  # per condition, (b, d)
    labels: list[np.ndarray]  # per condition, (b,)


def _mix(log_q: np.ndarray, lapse: float, num_classes: int) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.logaddexp(np.log1p(-lapse) + log_q if lapse < 1 else np.full_like(log_q, -np.inf),
                            np.log(lapse / num_classes) if lapse > 0 else -np.inf)


def best_lapse(log_q: np.ndarray, counts: np.ndarray) -> float:
    """The lapse that maximises sum counts * log((1 - lapse) q + lapse / C) (concave in the lapse)."""
    chosen = counts > 0
    n, q = counts[chosen], np.exp(log_q[chosen])
    inverse_c = 1.0 / log_q.shape[1]

    def slope(lapse: float) -> float:
        return float(np.sum(n * (inverse_c - q) / ((1 - lapse) * q + lapse * inverse_c)))

    if slope(1.0) >= 0:
        return 1.0
    if slope(LAPSE_FLOOR) <= 0:
        return LAPSE_FLOOR
    return float(optimize.brentq(slope, LAPSE_FLOOR, 1.0, xtol=1e-10))


class Candidate:
    """A model of the answers: fit(counts) -> params; log_probabilities(params) -> (pairs, C)."""

    label = ""
    kind = ""  # chance, condition, fixed, learned, baseline
    parameters = 0  # continuous parameters fitted
    extractor = ""

    def fit(self, counts: np.ndarray) -> dict:
        return {}

    def log_probabilities(self, params: dict) -> np.ndarray:
        raise NotImplementedError

    def spec(self, params: dict) -> ProxySpec | None:
        return None


class Chance(Candidate):
    label, kind = "chance (every answer at random)", "chance"

    def __init__(self, answers: Answers):
        self.shape = (len(answers.pair_label), answers.num_classes)

    def log_probabilities(self, params: dict) -> np.ndarray:
        return np.full(self.shape, -np.log(self.shape[1]))

    def spec(self, params: dict) -> ProxySpec:
        return ProxySpec(head="chance", lapse=1.0)


class ConditionMean(Candidate):
    label, kind = "each condition's mean accuracy", "baseline"

    def __init__(self, answers: Answers):
        self.answers = answers
        self.parameters = int(answers.pair_condition.max()) + 1

    def fit(self, counts: np.ndarray) -> dict:
        a = self.answers
        right = counts[np.arange(len(counts)), a.pair_label]
        conditions = self.parameters
        correct = np.bincount(a.pair_condition, weights=right, minlength=conditions)
        total = np.bincount(a.pair_condition, weights=counts.sum(1), minlength=conditions)
        return {"accuracy": (correct + 0.5) / (total + 1.0)}

    def log_probabilities(self, params: dict) -> np.ndarray:
        a, c = self.answers, self.answers.num_classes
        accuracy = params["accuracy"][a.pair_condition]
        out = np.repeat(np.log((1 - accuracy) / (c - 1))[:, None], c, axis=1)
        out[np.arange(len(out)), a.pair_label] = np.log(accuracy)
        return out


class FixedHead(Candidate):
    """A head's class scores s, fitted as softmax(s / T) with a lapse. `groups` (pairs, C, k): the
    similarities to each class's teaching images (-inf where a class has fewer), combined by
    logsumexp after the division; else `base` (pairs, C) is divided by T."""

    def __init__(self, template: ProxySpec, base: np.ndarray | None = None, groups: np.ndarray | None = None,
                 temperature: float | None = None, kind: str = "fixed", label: str = ""):
        self.template, self.base, self.groups, self.kind = template, base, groups, kind
        self.extractor = template.extractor
        values = (groups if groups is not None else base)
        values = values[np.isfinite(values)]
        self.scale = float(np.std(values)) or 1.0  # temperatures are searched in units of this spread
        self.fixed = temperature  # a baseline: this temperature, only the lapse fitted
        self.parameters = 1 if temperature is not None else 2
        head = "LC" if template.head == "lc" else f"NN {template.similarity} {template.rule}"
        self.label = label or f"{template.extractor} {head}"

    def log_q(self, temperature: float) -> np.ndarray:
        if self.groups is not None:
            with np.errstate(invalid="ignore"):
                scores = logsumexp(self.groups / temperature, axis=2)
        else:
            scores = self.base / temperature
        return log_softmax(scores, axis=1)

    def fit(self, counts: np.ndarray) -> dict:
        if self.fixed is not None:
            return {"temperature": self.fixed, "lapse": best_lapse(self.log_q(self.fixed), counts)}

        def loss(log_t: float) -> float:
            log_q = self.log_q(np.exp(log_t) * self.scale)
            return -float(np.sum(counts * _mix(log_q, best_lapse(log_q, counts), counts.shape[1])))

        grid = np.linspace(*LOG_T, GRID)
        values = [loss(g) for g in grid]
        i = int(np.argmin(values))
        low, high = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
        found = optimize.minimize_scalar(loss, bounds=(low, high), method="bounded", options={"xatol": 1e-4})
        log_t = float(found.x) if found.fun <= values[i] else float(grid[i])
        temperature = float(np.exp(log_t) * self.scale)
        return {"temperature": temperature, "lapse": best_lapse(self.log_q(temperature), counts)}

    def log_probabilities(self, params: dict) -> np.ndarray:
        return _mix(self.log_q(params["temperature"]), params["lapse"], self.base_classes)

    @property
    def base_classes(self) -> int:
        return (self.groups if self.groups is not None else self.base).shape[1]

    def spec(self, params: dict) -> ProxySpec:
        from dataclasses import replace

        return replace(self.template, temperature=params["temperature"], lapse=params["lapse"])


@dataclass
class Learned(Candidate):
    """An NN head on features through a fitted low-rank map (see the module's docstring)."""

    space: PairSpace
    answers: Answers
    start: FixedHead
    rank: int = 4
    penalty: float = 1.0
    kind: str = "learned"
    label: str = ""
    extractor: str = ""
    _basis: dict = field(default_factory=dict)

    def __post_init__(self):
        t = self.start.template
        self.extractor = self.space.extractor
        self.label = f"{self.extractor} + learned rank-{self.rank} map, NN {t.similarity} {t.rule}"
        stimuli = np.concatenate([self.space.pair_features, *self.space.teaching]).astype(np.float64)
        mean = stimuli.mean(0)
        _, sd, vt = np.linalg.svd(stimuli - mean, full_matrices=False)
        rank = min(self.rank, len(sd))
        spread = np.maximum(sd[:rank] / np.sqrt(len(stimuli)), 1e-12)
        self._basis = {"mean": mean, "w_in": vt[:rank].T / spread,
                       "norm": float(np.linalg.norm(stimuli, axis=1).mean())}
        self.parameters = 2 + rank * stimuli.shape[1]

    def _scores(self, w_out: torch.Tensor, log_t: torch.Tensor) -> torch.Tensor:
        basis, s = self._basis, self.space
        mean, w_in = torch.from_numpy(basis["mean"]), torch.from_numpy(basis["w_in"])
        t = self.start.template

        def mapped(f):
            f = torch.from_numpy(np.asarray(f, dtype=np.float64))
            return f + ((f - mean) @ w_in) @ w_out.T

        pairs = mapped(s.pair_features)
        out = torch.empty(len(pairs), self.answers.num_classes, dtype=torch.float64)
        for c, (teach, labels) in enumerate(zip(s.teaching, s.labels)):
            mine = torch.from_numpy(np.flatnonzero(self.answers.pair_condition == c))
            out[mine] = class_scores(pairs[mine], mapped(teach), torch.from_numpy(labels).long(),
                                     self.answers.num_classes, similarity=t.similarity, temperature=torch.exp(log_t),
                                     rule=t.rule)
        return out

    def fit(self, counts: np.ndarray) -> dict:
        begin = self.start.fit(counts)
        d, rank = self._basis["w_in"].shape
        w_out = torch.zeros(d, rank, dtype=torch.float64, requires_grad=True)
        log_t = torch.tensor(np.log(begin["temperature"]), dtype=torch.float64, requires_grad=True)
        lapse = float(np.clip(begin["lapse"], 1e-4, 1 - 1e-4))
        logit = torch.tensor(np.log(lapse / (1 - lapse)), dtype=torch.float64, requires_grad=True)
        n = torch.from_numpy(counts.astype(np.float64))
        total, scale = max(float(n.sum()), 1.0), self._basis["norm"]
        optimizer = torch.optim.LBFGS([w_out, log_t, logit], max_iter=150, line_search_fn="strong_wolfe",
                                      tolerance_grad=1e-7, tolerance_change=1e-10)

        def closure():
            optimizer.zero_grad()
            lam = torch.sigmoid(logit)
            log_p = torch.logaddexp(torch.log1p(-lam) + torch.log_softmax(self._scores(w_out, log_t), 1),
                                    torch.log(lam / counts.shape[1]))
            loss = -(n * log_p).sum() / total + self.penalty * w_out.pow(2).sum() / scale**2
            loss.backward()
            return loss

        optimizer.step(closure)
        return {"w_out": w_out.detach().numpy().copy(), "temperature": float(torch.exp(log_t.detach())),
                "lapse": float(torch.sigmoid(logit.detach()))}

    def log_probabilities(self, params: dict) -> np.ndarray:
        with torch.no_grad():
            scores = self._scores(torch.from_numpy(params["w_out"]), torch.tensor(np.log(params["temperature"])))
        return _mix(log_softmax(scores.numpy(), axis=1), params["lapse"], self.answers.num_classes)

    def spec(self, params: dict) -> ProxySpec:
        from dataclasses import replace

        found = {"mean": self._basis["mean"], "w_in": self._basis["w_in"], "w_out": params["w_out"]}
        return replace(self.start.template, temperature=params["temperature"], lapse=params["lapse"], map=found)


@dataclass
class Scored:
    """A candidate's cross-validated predictions of every answer, and its fit on all of them."""

    candidate: Candidate
    log_p: np.ndarray  # (n,) out-of-fold log-probability of each answer given
    hit: np.ndarray  # (n,) out-of-fold: 1 where the most probable answer was the one given (shared among ties)
    p_right: np.ndarray  # (n,) out-of-fold probability of the right answer
    params: dict  # fitted on every answer
    per_participant: np.ndarray = None  # (P,) summed log_p

    @property
    def log_likelihood(self) -> float:
        return float(self.log_p.mean())

    @property
    def accuracy(self) -> float:
        return float(self.hit.mean())


def folds_of(participants: int, folds: int, seed: int) -> np.ndarray:
    """The fold of each participant: a seeded permutation dealt round-robin."""
    order = np.random.default_rng(seed).permutation(participants)
    out = np.empty(participants, dtype=np.int64)
    out[order] = np.arange(participants) % folds
    return out


def cross_validate(candidate: Candidate, answers: Answers, fold: np.ndarray) -> Scored:
    n = len(answers.pair)
    log_p, hit, p_right = np.empty(n), np.empty(n), np.empty(n)
    answer_fold = fold[answers.participant]
    for k in range(int(fold.max()) + 1):
        held = answer_fold == k
        if not held.any():
            continue
        table = candidate.log_probabilities(candidate.fit(answers.counts(~held)))
        pairs = answers.pair[held]
        log_p[held] = table[pairs, answers.answer[held]]
        best = np.isclose(table, table.max(1, keepdims=True), rtol=0, atol=1e-12)
        hit[held] = best[pairs, answers.answer[held]] / best[pairs].sum(1)
        p_right[held] = np.exp(table[pairs, answers.pair_label[pairs]])
    scored = Scored(candidate, log_p, hit, p_right, candidate.fit(answers.counts()))
    scored.per_participant = np.bincount(answers.participant, weights=log_p, minlength=answers.participants)
    return scored


def paired_t(a: Scored, b: Scored) -> float:
    """t statistic of a's gain in held-out log-likelihood over b, across participants (inf where every
    participant gains exactly the same positive amount)."""
    d = a.per_participant - b.per_participant
    sd = float(d.std(ddof=1)) if len(d) > 1 else 0.0
    if sd == 0:
        return np.inf if d.sum() > 0 else 0.0
    return float(d.mean() / (sd / np.sqrt(len(d))))


def select(scored: list[Scored], chance: Scored, alpha: float = 0.05) -> tuple[Scored, str]:
    """The candidate calibration chooses, and why: the best by held-out log-likelihood among those that
    beat chance significantly across participants (one-sided t test, Bonferroni over the candidates);
    a learned candidate only where it beats the best fixed one by more than a standard error;
    chance where none beats it."""
    participants = len(chance.per_participant)
    critical = float(scipy_stats.t.ppf(1 - alpha / max(len(scored), 1), max(participants - 1, 1)))
    beating = [s for s in scored if s.candidate.kind in ("fixed", "learned") and paired_t(s, chance) > critical]
    if not beating:
        return chance, (f"no candidate beat chance significantly (one-sided t > {critical:.2f} across "
                        f"{participants} participants, Bonferroni over {len(scored)} candidates)")
    best = max(beating, key=lambda s: s.log_likelihood)
    fixed = [s for s in beating if s.candidate.kind == "fixed"]
    if best.candidate.kind == "learned" and fixed:
        runner = max(fixed, key=lambda s: s.log_likelihood)
        if paired_t(best, runner) <= 1.0:
            return runner, (f"the best fixed candidate: the learned map did not beat it by more than a standard "
                            f"error (t = {paired_t(best, runner):.2f})")
    return best, (f"the best held-out log-likelihood among the {len(beating)} candidates that beat chance "
                  f"significantly (t > {critical:.2f})")
