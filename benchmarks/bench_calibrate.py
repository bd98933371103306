"""Calibration benchmark (issue 21): does `teachset study calibrate` recover a known proxy, and how
long does it take on a study of 100 participants x 200 answers?

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_calibrate.py [--truths 10] [--participants 40]
        [--timing-participants 100] [--timing-answers 200] [--seed 0] [--out runs/bench-calibrate]

Recovery: a study on sklearn digits at 16 px, two conditions of two random teaching images per
class, 30 test images. For each of --truths random true proxies (an extractor among those with
weights here but scattering; LC or NN with a random similarity and rule; a temperature that puts
the class scores' spread per image at 0.7 to 3.3 logits; a lapse from 0 to 0.2), --participants
simulated participants answer every test image with the true proxy's probabilities (the tables
`study simulate` answers with, drawn here without the HTTP round trips), and calibration runs on
them with every extractor with weights here and the learned candidate. Counted: the true proxy
ranked first (extractor, head, and for NN the similarity and rule), the same ignoring the NN rule,
the temperature within 30%, the lapse within 0.05.

Timing: a study of --timing-answers test images, --timing-participants simulated participants
answering all of them (one true proxy); the time of fit_candidates (every candidate cross-validated
over 5 folds, the learned map) and of writing the report, with the stimuli's features computed
first (their time is printed apart: they are cached across calibrations). Reading the answers from
the database is not timed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from teachset import defaults
from teachset.data import load_dataset
from teachset.proxy import ProxySpec
from teachset.students.prototype import RULES, SIMILARITIES
from teachset.study.calibrate import (CalibrateOptions, StudyAnswers, answer_tables, available_extractors,
                                      fit_candidates, pair_space)
from teachset.study.create import create_study
from teachset.study.proxyfit import Answers
from teachset.teaching_set import TeachingSet

SIZE = 16


def make_study(root: Path, per_class: int, test_images: int, seed: int):
    dataset = load_dataset("digits", image_size=SIZE)
    rng = np.random.default_rng(seed)
    conditions = []
    for k, name in enumerate("AB"):
        index = [int(i) for c in range(dataset.num_classes)
                 for i in rng.choice(np.flatnonzero(dataset.labels == c), per_class, replace=False)]
        folder = TeachingSet.from_selection(dataset, index, method=f"random-{name}", params={}, seed=k).save(root / f"ts-{name}")
        conditions.append((name, folder))
    return create_study("Calibration benchmark", "digits", conditions, out=root / "study", test_images=test_images,
                        seed=seed)


def simulated_answers(design, spec: ProxySpec, participants: int, seed: int) -> StudyAnswers:
    """Every participant answers every test image with the proxy's probabilities (conditions alternating)."""
    tables = answer_tables(spec, design)
    rng = np.random.default_rng(seed)
    tokens = [s.token for s in design.test_pool]
    c = len(design.conditions)
    pair_of = {(k, i): k * len(tokens) + i for k in range(c) for i in range(len(tokens))}
    pair, answer, who = [], [], []
    for p in range(participants):
        k = p % c
        probabilities = np.array([tables[design.conditions[k].name][t] for t in tokens])
        cumulative = probabilities.cumsum(1) / probabilities.sum(1, keepdims=True)
        drawn = (rng.random((len(tokens), 1)) > cumulative).sum(1)
        pair += [pair_of[(k, i)] for i in range(len(tokens))]
        answer += drawn.tolist()
        who += [p] * len(tokens)
    keys = [(k, s.item) for k in range(c) for s in design.test_pool]
    labels = np.array([s.label for _ in range(c) for s in design.test_pool])
    answers = Answers(np.array(pair), np.minimum(np.array(answer), len(design.class_names) - 1), np.array(who),
                      np.array([k for k, _ in keys]), labels, len(design.class_names))
    return StudyAnswers(answers, keys, [f"sim{p}" for p in range(participants)], participants, 0)


def score_spread(design, spec: ProxySpec) -> float:
    """The median over test images and conditions of the spread (sd) of the proxy's class scores."""
    tables = answer_tables(replace(spec, temperature=1.0, lapse=0.0), design)
    spreads = [np.std(np.log(np.maximum(p, 1e-300))) for table in tables.values()
               for token, p in table.items() if token in {s.token for s in design.test_pool}]
    return float(np.median(spreads))


def draw_truth(design, extractors: list[str], rng: np.random.Generator) -> ProxySpec:
    extractor = str(rng.choice(extractors))
    head = str(rng.choice(["nn", "nn", "lc"]))
    spec = ProxySpec(extractor=extractor, head=head, similarity=str(rng.choice(SIMILARITIES)),
                     rule=str(rng.choice(RULES)), input_size=defaults.network_input_size(extractor, SIZE))
    spread = score_spread(design, spec)
    return replace(spec, temperature=spread / float(np.exp(rng.uniform(np.log(0.7), np.log(3.3)))),
                   lapse=float(rng.uniform(0, 0.2)))


def same_model(a: ProxySpec, b: ProxySpec, rule: bool = True) -> bool:
    if (a.extractor, a.head, a.map is None) != (b.extractor, b.head, True):
        return False
    return a.head != "nn" or (a.similarity == b.similarity and (not rule or a.rule == b.rule))


def recovery(args, root: Path, extractors: list[str]) -> dict:
    design = make_study(root / "recovery", per_class=2, test_images=30, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    rows = []
    for n in range(args.truths):
        truth = draw_truth(design, [e for e in extractors if e != "scattering"], rng)
        began = time.perf_counter()
        found = fit_candidates(design, simulated_answers(design, truth, args.participants, seed=args.seed + n),
                               CalibrateOptions(extractors=tuple(extractors)))
        seconds = time.perf_counter() - began
        first = found.ranked[0].candidate.spec(found.ranked[0].params)
        chosen = found.chosen.candidate.spec(found.chosen.params)
        row = {"truth": truth.name, "first": first.name if first else found.ranked[0].candidate.label,
               "chosen": chosen.name if chosen else found.chosen.candidate.label,
               "first_is_true": bool(first and same_model(first, truth)),
               "first_is_true_but_rule": bool(first and same_model(first, truth, rule=False)),
               "chosen_is_true": bool(chosen and same_model(chosen, truth)),
               "temperature_ratio": first.temperature / truth.temperature if first and first.head == truth.head else None,
               "lapse_error": abs(first.lapse - truth.lapse) if first else None, "seconds": seconds}
        row["temperature_within_30%"] = row["temperature_ratio"] is not None and abs(row["temperature_ratio"] - 1) < 0.3
        row["lapse_within_0.05"] = row["lapse_error"] is not None and row["lapse_error"] < 0.05
        rows.append(row)
        print(f"{n + 1:>2}. true {truth.name}\n    first {row['first']}  [{'ok' if row['first_is_true'] else 'MISS'}; "
              f"T x{row['temperature_ratio'] or float('nan'):.2f}; lapse error {row['lapse_error'] or 0:.3f}; "
              f"{seconds:.1f} s]", flush=True)
    rate = lambda key: sum(bool(r[key]) for r in rows) / len(rows)  # noqa: E731
    return {"rows": rows, "ranked_first": rate("first_is_true"), "ranked_first_but_rule": rate("first_is_true_but_rule"),
            "chosen": rate("chosen_is_true"), "temperature_within_30%": rate("temperature_within_30%"),
            "lapse_within_0.05": rate("lapse_within_0.05"), "median_seconds": float(np.median([r["seconds"] for r in rows]))}


def timing(args, root: Path, extractors: list[str]) -> dict:
    from teachset.study.calibrate import Calibration  # noqa: F401  (what fit_candidates returns)
    from teachset.study.calibration_report import summary_of, write_report
    from teachset.study.db import Database

    design = make_study(root / "timing", per_class=2, test_images=args.timing_answers, seed=args.seed + 1)
    truth = replace(ProxySpec(extractor="alexnet", input_size=defaults.network_input_size("alexnet", SIZE)),
                    temperature=0.03, lapse=0.1)
    study = simulated_answers(design, truth, args.timing_participants, seed=args.seed)
    began = time.perf_counter()
    from teachset.study.calibrate import study_dataset

    dataset = study_dataset(design)
    for extractor in {*extractors, defaults.EXTRACTOR}:
        pair_space(design, dataset, extractor, defaults.network_input_size(extractor, SIZE), study.pairs)
    pair_space(design, dataset, defaults.EXTRACTOR, None, study.pairs)
    features_s = time.perf_counter() - began
    began = time.perf_counter()
    options = CalibrateOptions(extractors=tuple(extractors))
    found = fit_candidates(design, study, options)
    fit_s = time.perf_counter() - began
    began = time.perf_counter()
    out = root / "timing" / "calibration"
    out.mkdir(parents=True, exist_ok=True)
    with Database(f"sqlite:///{root / 'timing' / 'empty.sqlite'}") as db:
        about = summary_of(design, db, found, options, "benchmark")
    write_report(design, found, about, out)
    report_s = time.perf_counter() - began
    print(f"timing: {len(study.answers.pair)} answers of {args.timing_participants} participants, "
          f"{len(found.ranked)} candidates ({len(extractors)} extractors): features {features_s:.1f} s (cached after), "
          f"fit and cross-validation {fit_s:.1f} s, report {report_s:.1f} s; chosen {found.chosen.candidate.label}",
          flush=True)
    return {"answers": len(study.answers.pair), "participants": args.timing_participants, "candidates": len(found.ranked),
            "extractors": extractors, "features_s": features_s, "fit_s": fit_s, "report_s": report_s,
            "chosen": found.chosen.candidate.label}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--truths", type=int, default=10)
    parser.add_argument("--participants", type=int, default=40)
    parser.add_argument("--timing-participants", type=int, default=100)
    parser.add_argument("--timing-answers", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="where results.json goes (default: a temporary folder)")
    args = parser.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="bench-calibrate-"))
    extractors = available_extractors()
    print(f"extractors with weights here: {', '.join(extractors)}", flush=True)
    found = {"recovery": recovery(args, root, extractors), "timing": timing(args, root, extractors)}
    r = found["recovery"]
    print(f"recovery over {args.truths} true proxies, {args.participants} participants x 30 answers each: true proxy "
          f"ranked first {r['ranked_first']:.0%} (ignoring the NN rule {r['ranked_first_but_rule']:.0%}), chosen "
          f"{r['chosen']:.0%}, temperature within 30% {r['temperature_within_30%']:.0%}, lapse within 0.05 "
          f"{r['lapse_within_0.05']:.0%}; median {r['median_seconds']:.1f} s per calibration")
    (root / "results.json").write_text(json.dumps(found, indent=1, default=str))
    print(f"results: {root / 'results.json'}")


if __name__ == "__main__":
    main()
