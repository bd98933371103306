"""The teachset command line. Every command has worked examples in its --help."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .errors import TeachsetError


def _examples(text: str) -> str:
    return "examples:\n" + "\n".join("  " + line for line in text.strip().splitlines())


def add_command(subparsers, name: str, func, help: str, examples: str) -> argparse.ArgumentParser:
    """A sub-command with its help, worked examples and handler."""
    p = subparsers.add_parser(name, help=help, description=help, epilog=_examples(examples),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=func)
    return p


def _add_dataset_args(p: argparse.ArgumentParser, positional: bool = True) -> None:
    if positional:
        p.add_argument("dataset", help="a bundled dataset name (see `teachset datasets`), a folder with one sub-folder per class, or a CSV manifest (path,label[,group])")
    p.add_argument("--size", type=int, default=64, help="square image size in pixels (default 64)")
    p.add_argument("--channels", default=None, help="source channels for R,G,B of multi-channel TIFFs, e.g. 2,1,0 (recorded)")
    p.add_argument("--skip-bad", action="store_true", help="leave out unreadable image files (and list them) instead of stopping")


def _add_feature_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--extractor", default="mobilenet_v2", help="frozen feature extractor (default mobilenet_v2; see `teachset features --list`)")
    p.add_argument("--input-size", type=int, default=None, help="resize images to this size before the extractor (default: as loaded)")


def _load(args):
    from .data import load_dataset

    dataset = load_dataset(args.dataset, image_size=args.size, channels=args.channels, skip_bad=args.skip_bad)
    if dataset.skipped:
        names = ", ".join(path for path, _ in dataset.skipped[:5])
        print(f"skipped {len(dataset.skipped)} unreadable file(s): {names}{' ...' if len(dataset.skipped) > 5 else ''}", file=sys.stderr)
    print(dataset.describe(), f"[fingerprint {dataset.fingerprint}]", file=sys.stderr)
    return dataset


def _parse_params(pairs: list[str]) -> dict:
    params = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise TeachsetError(f"--param '{pair}' is not NAME=VALUE; write e.g. --param order=least")
        key, value = pair.split("=", 1)
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def cmd_datasets(args) -> None:
    from .data import BUNDLED

    for d in BUNDLED.values():
        state = "" if d.available() else "  [not installed: sudo apt-get install dataset-fashion-mnist]"
        print(f"{d.name:<14} {d.description}{state}")


def cmd_features(args) -> None:
    from .features import EXTRACTORS, cache_dir, dataset_features

    if args.list:
        for spec in EXTRACTORS.values():
            print(f"{spec.name:<13} {spec.description}")
        return
    if not args.dataset:
        raise TeachsetError("give a dataset (or --list); e.g. teachset features elpv")
    dataset = _load(args)
    start = time.perf_counter()
    features = dataset_features(dataset, args.extractor, args.input_size, args.weights, use_cache=not args.recompute)
    seconds = time.perf_counter() - start
    print(f"{features.shape[0]} x {features.shape[1]} features ({args.extractor}) in {seconds:.1f} s, cached under {cache_dir()}")


def cmd_select(args) -> None:
    from .features import dataset_features
    from .methods import make_method, select_teaching_set

    method = make_method(args.method, **_parse_params(args.param))
    dataset = _load(args)
    dataset.check_per_class(args.per_class)
    features = dataset_features(dataset, args.extractor, args.input_size)
    ts = select_teaching_set(method, dataset, features, args.per_class, seed=args.seed, extractor=args.extractor)
    out = Path(args.out or f"teaching_sets/{dataset.name}-{args.method}-seed{args.seed}")
    ts.save(out, overwrite=args.overwrite)
    print(f"wrote {len(ts)} images ({args.method}, seed {args.seed}) to {out}")


def cmd_evaluate(args) -> None:
    from . import __version__
    from .data import load_dataset
    from .evaluate import Evaluator, format_table, summarize, write_results
    from .features import dataset_features
    from .pipeline import majority_rate
    from .runs import new_run_dir
    from .teaching_set import TeachingSet

    sets = [TeachingSet.load(p) for p in args.teaching_sets]
    evaluators: dict[str, Evaluator] = {}
    rows = []
    for ts in sets:
        spec = dict(ts.dataset["spec"])
        if args.dataset:
            spec.update(source=args.dataset, skip_bad=args.skip_bad)
        key = json.dumps(spec, sort_keys=True)
        if key not in evaluators:
            dataset = load_dataset(**spec)
            evaluators[key] = Evaluator(dataset, dataset_features(dataset, args.extractor, args.input_size), args.extractor, args.input_size)
        for row in evaluators[key].evaluate(ts, repeats=args.repeats, seed=args.seed):
            row["teaching_set"] = str(Path(row["teaching_set"]).resolve())
            rows.append(row)
    summary = summarize(rows)
    print(format_table(summary))
    first = next(iter(evaluators.values())).dataset
    options = {k: v for k, v in vars(args).items() if k != "func"}
    out = new_run_dir(args.out, f"evaluate-{first.name}", options)
    context = {"code_version": __version__, "options": options,
               "extractor": args.extractor, "majority_rate": majority_rate(first),
               "dataset": {"name": first.name, "fingerprint": first.fingerprint, "spec": first.spec, "description": first.describe()}}
    write_results(out, rows, summary, context)
    print(f"results: {out / 'results.json'} (and results.csv, summary.csv); make a report with: teachset report {out}")


def cmd_report(args) -> None:
    from .report import write_report

    print(f"report: {write_report(args.results, args.out)}")


def cmd_demo(args) -> None:
    from .evaluate import format_table
    from .features import dataset_features
    from .generators import load_generator
    from .methods import SELECTION_METHODS
    from .methods.teacher import TeacherOptions
    from .pipeline import run_experiment, selection_makers, teacher_makers
    from .runs import new_run_dir

    start = time.perf_counter()
    methods = args.methods or list(SELECTION_METHODS)
    from .generators.base import bundled_generators

    generator_name = args.generator or (f"teachset:{args.dataset}-{args.size}" if args.teachers else None)
    if args.teachers and not args.generator and f"{args.dataset}-{args.size}" not in bundled_generators():
        raise TeachsetError(f"no generator is bundled for {args.dataset} at {args.size} px (bundled: {', '.join(bundled_generators())}); "
                            "train one with `teachset generator train` and pass --generator, or run without teachers: --teachers")
    generator = load_generator(generator_name) if args.teachers else None
    dataset = _load(args)
    dataset.check_per_class(args.per_class)
    options = {k: v for k, v in vars(args).items() if k != "func"} | {"methods": methods, "generator": generator_name}
    run_dir = new_run_dir(args.out, f"demo-{dataset.name}", options)
    features = dataset_features(dataset, args.extractor, args.input_size)
    makers = selection_makers(methods, dataset, features, args.per_class, args.extractor)
    if args.teachers:
        teacher = TeacherOptions(epochs=args.teacher_epochs)
        makers |= teacher_makers(args.teachers, generator, generator_name, dataset, features, args.per_class,
                                 args.extractor, args.input_size, teacher)
    results = run_experiment(dataset, features, run_dir, makers, repeats=args.repeats, extractor=args.extractor,
                             input_size=args.input_size, options=options)
    print(format_table(results["summary"]))
    print(f"(always answering the majority class scores {results['majority_rate']:.3f})")
    print(f"demo finished in {time.perf_counter() - start:.0f} s")
    print(f"report: {run_dir / 'report.html'}")


def cmd_generator_train(args) -> None:
    import shlex

    from .atomic import write_json
    from .generators.train import GeneratorTrainer, TrainOptions, check_options, resolve_device, resolve_precision
    from .runs import new_run_dir

    options = TrainOptions(model=args.model, latent_dim=args.latent_dim, code_grid=args.code_grid, prior_bandwidth=args.prior_bandwidth,
                           width=args.width, batch_size=args.batch_size, lr=args.lr, lr_schedule=args.lr_schedule,
                           minutes=args.minutes, steps=args.steps, adversarial_start=args.adversarial_start, adversarial_weight=args.adversarial_weight,
                           flip=args.flip, seed=args.seed, sample_every=args.sample_every, checkpoint_every=args.checkpoint_every)
    if options.minutes is None and options.steps is None and not args.resume:
        raise TeachsetError("give a budget: --minutes M and/or --steps N")
    resolve_precision(args.precision, resolve_device(args.device))  # before anything is loaded or written
    dataset = _load(args)
    command = "teachset " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[0].endswith("teachset") else ""
    if args.resume:
        run_dir = Path(args.resume)
        recorded = json.loads((run_dir / "options.json").read_text())
        command = " && ".join(c for c in (recorded.get("command"), command) if c)  # the whole history that made it
        budget = {k: v for k, v in (("minutes", args.minutes), ("steps", args.steps)) if v is not None}
        trainer = GeneratorTrainer(dataset, TrainOptions.recorded({**recorded["train"], **budget}), run_dir, args.device, args.precision)  # a new budget may extend the run
        trainer.load_resume()
        write_json(run_dir / "options.json", {**recorded, "command": command})
        print(f"resuming {run_dir} at step {trainer.step}", file=sys.stderr)
    else:
        from dataclasses import asdict

        check_options(dataset, options)
        run_dir = new_run_dir(args.out, f"generator-{dataset.name}-{dataset.image_size}px",
                              {"dataset": dataset.spec, "train": asdict(options), "command": command})
        trainer = GeneratorTrainer(dataset, options, run_dir, args.device, args.precision)
    checkpoint = trainer.run(command)
    print(f"generator: {checkpoint} ({trainer.step} steps, {trainer.elapsed / 60:.1f} min); samples in {run_dir / 'samples'}")


def _load_generator(args):
    from .generators import load_generator

    options = {}
    if getattr(args, "latent_dim", None):
        options["latent_dim"] = args.latent_dim
    if getattr(args, "num_classes", None):
        options["num_classes"] = args.num_classes
    if getattr(args, "conditional", False):
        options["conditional"] = True
    return load_generator(args.generator, **options)


def _generator_dataset(generator, args):
    """The dataset a generator was trained on (recorded in its checkpoint), or --dataset."""
    from .data import load_dataset

    recorded = getattr(generator, "meta", {}).get("dataset")
    if args.dataset:
        dataset = load_dataset(args.dataset, image_size=generator.image_size, channels=args.channels, skip_bad=args.skip_bad)
    elif recorded:
        dataset = load_dataset(**recorded["spec"])
    else:
        raise TeachsetError("this generator records no dataset; give the real images with --dataset")
    if (dataset.image_size, dataset.channels) != (generator.image_size, generator.channels):
        raise TeachsetError(f"the generator makes {generator.channels}x{generator.image_size}px images but the dataset has "
                            f"{dataset.channels}x{dataset.image_size}px; load the dataset at the generator's size")
    return dataset


def cmd_generator_eval(args) -> None:
    from .data.splits import stratified_holdout
    from .generators.quality import evaluate_generator, format_quality

    generator = _load_generator(args)
    dataset = _generator_dataset(generator, args)
    held = getattr(generator, "meta", {}).get("held_out_ids")
    if not held:
        held = [dataset.ids[i] for i in stratified_holdout(dataset.labels, 0.2, args.seed)[1]]
    out = Path(args.out or (Path(args.generator).parent / "eval" if Path(args.generator).is_dir() else "generator-eval"))
    results = evaluate_generator(generator, dataset, held, out, seed=args.seed)
    print(format_quality(results))
    print(f"quality.json and sample grids (with each sample's nearest real image) in {out}")


def cmd_generator_invert(args) -> None:
    import numpy as np
    import torch

    from .atomic import write_json
    from .generators.invert import invert, to_uint8
    from .teaching_set import TeachingSet

    generator = _load_generator(args)
    source = TeachingSet.load(args.teaching_set)
    if source.images.shape[1:] != (generator.channels, generator.image_size, generator.image_size):
        raise TeachsetError(f"the teaching set's images are {source.images.shape[1:]}, the generator makes "
                            f"{(generator.channels, generator.image_size, generator.image_size)}; use a generator of the same size")
    labels = torch.from_numpy(source.labels)
    z, report = invert(generator, source.tensor(), labels, steps=args.steps, lr=args.lr)
    with torch.no_grad():
        images = generator.generate(z, labels)
    inverted = TeachingSet(images=to_uint8(images), labels=source.labels.copy(), class_names=source.class_names,
                           method=f"inverted-{source.method}", params={"source": source.params, "steps": args.steps, "lr": args.lr,
                           "generator": str(args.generator)}, seed=source.seed, dataset=source.dataset,
                           source_ids=source.source_ids, latents=z.numpy().astype(np.float32))
    inverted.save(args.out, overwrite=args.overwrite)
    write_json(Path(args.out) / "inversion.json", report)
    e, r = report["encoder"], report["refined"]
    print(f"LPIPS-AlexNet {e['lpips_alexnet']:.3f} -> {r['lpips_alexnet']:.3f}, LPIPS-VGG {e['lpips_vgg16']:.3f} -> "
          f"{r['lpips_vgg16']:.3f}, feature distance {e['feature_distance']:.3f} -> {r['feature_distance']:.3f} (encoder -> refined)")
    print(f"wrote the inverted teaching set (with its latent codes) to {args.out}")


def teacher_options(args):
    from .methods.teacher import TeacherOptions

    return TeacherOptions(student=args.student, epochs=args.epochs, lr=args.lr, student_epochs=args.student_epochs, l2=args.l2,
                          init="fresh" if args.fresh_init else "reset", hypergradient=args.hypergradient, solver=args.solver,
                          prior_weight=args.prior_weight, truncation=args.truncation, diversity_weight=args.diversity_weight,
                          seed=args.seed)


def cmd_teach(args) -> None:
    import os

    from .atomic import atomic_write_text
    from .features import build_extractor, dataset_features
    from .methods.latent import teach_latent
    from .methods.pixels import teach_pixels
    from .methods.teacher import snap_to_real
    from .teaching_set import TeachingSet

    options = teacher_options(args)
    options.check()
    init_set = TeachingSet.load(args.init) if args.init else None
    if args.space == "latent":
        if not args.generator:
            raise TeachsetError("the latent teacher needs --generator CHECKPOINT (or use --space pixels)")
        generator = _load_generator(args)
        if args.size != generator.image_size:
            args.size = generator.image_size  # the dataset is loaded at the generator's size
    dataset = _load(args)
    features = dataset_features(dataset, args.extractor, args.input_size)
    out = Path(args.out or f"teaching_sets/{dataset.name}-{args.space}-{args.student}-seed{args.seed}")
    if out.exists() and not args.overwrite:
        raise TeachsetError(f"'{out}' already exists; choose another --out or pass --overwrite")
    curve_path = out.with_name(f".{out.name}.curve.jsonl")
    if args.space == "latent":
        ts, curve = teach_latent(generator, dataset, features, options, args.per_class, args.extractor, args.input_size,
                                 init_set, str(args.generator), curve_path)
    else:
        ts, curve = teach_pixels(dataset, features, options, args.per_class, args.extractor, args.input_size, init_set, curve_path)
    ts.save(out, overwrite=args.overwrite)
    os.replace(curve_path, out / "curve.jsonl")
    last = curve[-1]
    print(f"{ts.method}: {options.epochs} teacher epochs, proxy accuracy {curve[0]['proxy_accuracy']:.3f} -> {last['proxy_accuracy']:.3f}; "
          f"wrote {out} (curve.jsonl inside)")
    if args.snap_to_real:
        snapped = snap_to_real(ts, dataset, features, build_extractor(args.extractor, args.input_size))
        snapped_out = out.with_name(out.name + "-snapped")
        snapped.save(snapped_out, overwrite=args.overwrite)
        atomic_write_text(snapped_out / "curve.jsonl", (out / "curve.jsonl").read_text())
        print(f"nearest real images: {snapped_out}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="teachset",
        description="Build small teaching sets that teach people the difference between image classes, and measure how well they teach.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples("""
teachset demo                      # the whole selection experiment on elpv, with an HTML report
teachset datasets                  # the bundled datasets
teachset select elpv --method kcenters --per-class 5 --out sets/kcenters
teachset evaluate sets/kcenters --repeats 5
"""))
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, func, help, examples):
        return add_command(sub, name, func, help, examples)

    command("datasets", cmd_datasets, "list the bundled datasets", "teachset datasets")

    p = command("features", cmd_features, "compute (and cache) a dataset's features with a frozen extractor", """
teachset features --list
teachset features elpv                          # mobilenet_v2 at 64 px, cached
teachset features path/to/folder --extractor alexnet --size 128
teachset features elpv --extractor resnet50 --weights resnet50-0676ba61.pth
""")
    p.add_argument("dataset", nargs="?", help="a bundled dataset name, a class-per-folder folder, or a CSV manifest")
    _add_dataset_args(p, positional=False)
    _add_feature_args(p)
    p.add_argument("--weights", default=None, help="a local torchvision weights file (resnet18/resnet50/mobilenet_v2)")
    p.add_argument("--recompute", action="store_true", help="ignore the cache and compute again")
    p.add_argument("--list", action="store_true", help="list the extractors")

    from .methods import METHODS

    p = command("select", cmd_select, "pick a teaching set of real images with a selection method and save it", f"""
teachset select elpv --method kcenters --per-class 5 --out sets/elpv-kcenters
teachset select elpv --method forgetting --param order=least --seed 3 --out sets/least-forgotten
teachset select my_images/ --method medoids --per-class 3 --size 128 --out sets/mine
methods: {', '.join(f'{m} ({c.summary})' for m, c in METHODS.items())}
""")
    _add_dataset_args(p)
    _add_feature_args(p)
    p.add_argument("--method", required=True, choices=list(METHODS))
    p.add_argument("--per-class", type=int, default=5, help="teaching images per class (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="a method parameter, e.g. order=least (repeatable)")
    p.add_argument("--out", default=None, help="the teaching-set folder to write (default teaching_sets/<dataset>-<method>-seed<seed>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing folder")

    p = command("evaluate", cmd_evaluate, "score teaching sets with fresh LC and NN proxy students", """
teachset evaluate sets/elpv-kcenters sets/elpv-random --repeats 5
teachset evaluate sets/mine --dataset my_images/ --extractor alexnet
""")
    p.add_argument("teaching_sets", nargs="+", help="teaching-set folders")
    p.add_argument("--dataset", default=None, help="the dataset to score on (default: the one recorded in each teaching set)")
    p.add_argument("--skip-bad", action="store_true", help="with --dataset: leave out unreadable files")
    _add_feature_args(p)
    p.add_argument("--repeats", type=int, default=5, help="fresh students per teaching set and student kind (default 5)")
    p.add_argument("--seed", type=int, default=0, help="first student seed")
    p.add_argument("--out", default="runs", help="folder under which a numbered results folder is made (default runs)")

    p = command("report", cmd_report, "write the HTML report of an evaluation or demo run", """
teachset report runs/00000-demo-elpv
teachset report runs/00001-evaluate-elpv/results.json --out report.html
""")
    p.add_argument("results", help="a run folder or its results.json")
    p.add_argument("--out", default=None, help="the HTML file (default: report.html beside results.json)")

    p = command("demo", cmd_demo, "every selection method and the latent teachers on a bundled dataset, fresh LC and NN students, an HTML report", """
teachset demo                                  # elpv, 5 per class, 5 repeats, selection methods and latent teachers
teachset demo --dataset digits --per-class 2 --repeats 3 --teachers   # selection methods only (no generator for digits)
teachset demo --methods random kcenters --extractor alexnet
""")
    p.add_argument("--dataset", default="elpv", help="dataset (default elpv)")
    _add_dataset_args(p, positional=False)
    _add_feature_args(p)
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=None, help="default: all")
    p.add_argument("--per-class", type=int, default=5)
    p.add_argument("--repeats", type=int, default=5, help="teaching sets per method (seeds 0..R-1), each scored by fresh students")
    p.add_argument("--teachers", nargs="*", choices=["lc", "nn"], default=["lc", "nn"],
                   help="latent teachers to run (default: lc nn; none: --teachers with no value)")
    p.add_argument("--teacher-epochs", type=int, default=200, help="teacher epochs in the demo (the paper: 1000; default 200 to fit 10 minutes)")
    p.add_argument("--generator", default=None, help="generator for the latent teachers (default: the bundled teachset:DATASET-SIZE)")
    p.add_argument("--out", default="runs", help="folder under which the numbered run folder is made (default runs)")

    p = command("generator", None, "train, evaluate and invert image generators", """
teachset generator train elpv --minutes 30 --flip
teachset generator eval runs/00003-generator-elpv-64px/checkpoint
teachset generator invert runs/00003-generator-elpv-64px/checkpoint sets/elpv-kcenters --out sets/kcenters-inverted
""")
    gsub = p.add_subparsers(dest="generator_command", required=True, metavar="COMMAND")

    def gcommand(name, func, help, examples):
        return add_command(gsub, name, func, help, examples)

    q = gcommand("train", cmd_generator_train, "train the autoencoder generator on a dataset (on a CPU or a GPU; resumable)", """
teachset generator train elpv --minutes 30 --flip          # the recommended budget on 2 CPU cores
teachset generator train elpv --minutes 30 --flip --code-grid 0 --latent-dim 128   # a code vector instead of a grid (scored worse)
teachset generator train my_cells/ --size 128 --steps 20000
teachset generator train elpv --model cgan --minutes 60         # a conditional GAN from scratch instead
teachset generator train elpv --minutes 60 --flip --adversarial-weight 0.05   # with adversarial sharpening after 40%
teachset generator train elpv --resume runs/00003-generator-elpv-64px   # continue an interrupted run
teachset generator train elpv --size 128 --flip --minutes 8 --device cuda   # on a GPU
""")
    _add_dataset_args(q)
    q.add_argument("--model", choices=["autoencoder", "cgan"], default="autoencoder",
                   help="an autoencoder with a class prior over its codes (default; what works on a CPU) or a conditional GAN from scratch")
    q.add_argument("--minutes", type=float, default=None, help="training-time budget in minutes")
    q.add_argument("--steps", type=int, default=None, help="step budget (whichever budget ends first)")
    q.add_argument("--latent-dim", type=int, default=256, help="numbers in a code (default 256: 4 channels on the 8 x 8 grid)")
    q.add_argument("--code-grid", type=int, default=8,
                   help="autoencoder: the code is a G x G grid of latent-dim / G^2 channels (default 8); 0: a vector, from a linear layer at 4 x 4")
    q.add_argument("--prior-bandwidth", type=float, default=0.15,
                   help="autoencoder: noise added to a training code to sample, in class standard deviations (default 0.15)")
    q.add_argument("--width", type=int, default=16, help="channels of the highest-resolution block (doubles per level)")
    q.add_argument("--batch-size", type=int, default=32)
    q.add_argument("--lr", type=float, default=1e-3, help="the generator's Adam learning rate (where the schedule starts)")
    q.add_argument("--lr-schedule", choices=["cosine", "constant"], default="cosine",
                   help="cosine: the learning rates fall from --lr to 0 over the budget (extending a run's budget stretches it)")
    q.add_argument("--adversarial-weight", type=float, default=0.0,
                   help="autoencoder: weight of a patch discriminator's hinge loss (default 0: reconstruction only, which scored no worse on 2 CPU cores)")
    q.add_argument("--adversarial-start", type=float, default=0.4, help="fraction of the budget before the adversarial term starts")
    q.add_argument("--flip", action="store_true", help="random flips (only where flips keep the class, as on elpv)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--sample-every", type=int, default=500)
    q.add_argument("--checkpoint-every", type=int, default=1000)
    q.add_argument("--resume", default=None, help="a run folder to continue (with its options; --minutes/--steps set a new total budget)")
    q.add_argument("--device", default="auto", help="auto (a CUDA GPU if there is one, else the CPU), cpu, cuda or cuda:N; a run may resume on another device")
    q.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="auto: bfloat16 autocast on a CPU with native bfloat16 (AVX512-BF16/AMX; 1.6x faster), else float32")
    q.add_argument("--out", default="runs")

    def add_generator_arg(q):
        q.add_argument("generator", help="a checkpoint folder, or a TorchScript file (z -> image or (z, y) -> image)")
        q.add_argument("--latent-dim", type=int, default=None, help="TorchScript only: latent size, if the module does not declare it")
        q.add_argument("--num-classes", type=int, default=None, help="TorchScript only: number of classes")
        q.add_argument("--conditional", action="store_true", help="TorchScript only: the module takes (z, y)")

    q = gcommand("eval", cmd_generator_eval, "measure a generator against held-out real images (KID/FID with floor, class consistency, diversity, two-sample, memorisation)", """
teachset generator eval runs/00003-generator-elpv-64px/checkpoint
teachset generator eval stylegan.pt --latent-dim 512 --num-classes 2 --conditional --dataset my_cells/
""")
    add_generator_arg(q)
    _add_dataset_args(q, positional=False)
    q.add_argument("--dataset", default=None, help="the real images (default: the dataset recorded in the checkpoint)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--out", default=None, help="output folder (default: eval/ beside the checkpoint)")

    q = gcommand("invert", cmd_generator_invert, "find latent codes that reproduce a teaching set's images; write them as a teaching set", """
teachset generator invert runs/00003-generator-elpv-64px/checkpoint sets/elpv-kcenters --out sets/kcenters-inverted
teachset generator invert teachset:elpv-64 sets/elpv-medoids --steps 500 --out sets/medoids-inverted
""")
    add_generator_arg(q)
    q.add_argument("teaching_set", help="a teaching-set folder")
    q.add_argument("--steps", type=int, default=200, help="optimisation steps after the encoder (default 200)")
    q.add_argument("--lr", type=float, default=0.03)
    q.add_argument("--out", required=True, help="the teaching-set folder to write")
    q.add_argument("--overwrite", action="store_true")

    p = command("teach", cmd_teach, "machine teaching: optimise a teaching set in a generator's latent space (or in pixel space) against a proxy student", """
teachset teach elpv --student lc --generator teachset:elpv-64          # the generator bundled for elpv at 64 px
teachset teach elpv --student nn --generator runs/00003-generator-elpv-64px/checkpoint --epochs 300
teachset teach elpv --student lc --generator teachset:elpv-64 --init sets/elpv-medoids --snap-to-real
teachset teach elpv --space pixels --student lc --epochs 500           # dataset distillation, the control
""")
    _add_dataset_args(p)
    _add_feature_args(p)
    p.add_argument("--student", choices=["lc", "nn"], default="lc")
    p.add_argument("--space", choices=["latent", "pixels"], default="latent", help="optimise latent codes (default) or pixels")
    p.add_argument("--generator", default=None, help="a checkpoint folder, teachset:elpv-64 (bundled), or a TorchScript file")
    p.add_argument("--latent-dim", type=int, default=None, help="TorchScript only: latent size")
    p.add_argument("--num-classes", type=int, default=None, help="TorchScript only: number of classes")
    p.add_argument("--conditional", action="store_true", help="TorchScript only: the module takes (z, y)")
    p.add_argument("--per-class", type=int, default=5)
    p.add_argument("--epochs", type=int, default=1000, help="teacher epochs (default 1000)")
    p.add_argument("--lr", type=float, default=0.05, help="Adam step on the codes (or pixel logits)")
    p.add_argument("--student-epochs", type=int, default=50, help="LC: at most this many Newton epochs (or unrolled GD steps)")
    p.add_argument("--l2", type=float, default=1e-3, help="LC: the student's L2 penalty (as the evaluation's LC)")
    p.add_argument("--fresh-init", action="store_true", help="unrolled LC: a fresh random student init every teacher epoch (default: reset to one; the implicit LC reaches its unique optimum from any init)")
    p.add_argument("--hypergradient", choices=["implicit", "unrolled"], default="implicit")
    p.add_argument("--solver", choices=["woodbury", "cg", "neumann"], default="woodbury", help="implicit: Hessian solve")
    p.add_argument("--prior-weight", type=float, default=0.0, help="latent: penalty on the codes' distance to the class prior")
    p.add_argument("--truncation", type=float, default=None, help="latent: keep codes within this radius of the prior (whitened, per sqrt(dim))")
    p.add_argument("--diversity-weight", type=float, default=0.0, help="penalty on similarity between one class's teaching examples")
    p.add_argument("--init", default=None, help="start from this teaching set (its latent codes, or its images inverted)")
    p.add_argument("--snap-to-real", action="store_true", help="also write the nearest real images (OUT-snapped)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None)
    p.add_argument("--overwrite", action="store_true")

    from .gtn.cli import add_gtn_command
    from .study.cli import add_commands as add_study_commands

    add_gtn_command(sub, add_command)
    add_study_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except TeachsetError as error:
        print(f"teachset: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("teachset: interrupted; finished artifacts are kept, unfinished ones were not written", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
