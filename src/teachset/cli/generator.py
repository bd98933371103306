"""`teachset generator train | eval | invert`: image generators for the latent teacher."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import TeachsetError
from .common import add_command, add_dataset_args, command_line, load_dataset


def add_generator_args(p, positional: bool = True) -> None:
    """The generator to load: a checkpoint folder, a bundled one, or a TorchScript file (with what it does not declare)."""
    help = "a checkpoint folder, a bundled one (teachset:elpv-64), or a TorchScript file (z -> image or (z, y) -> image)"
    if positional:
        p.add_argument("generator", help=help)
    else:
        p.add_argument("--generator", default=None, help=help)
    p.add_argument("--latent-dim", type=int, default=None, help="TorchScript only: latent size, if the module does not declare it")
    p.add_argument("--num-classes", type=int, default=None, help="TorchScript only: number of classes")
    p.add_argument("--conditional", action="store_true", help="TorchScript only: the module takes (z, y)")


def load_generator_from_args(args):
    from ..generators import load_generator

    options = {k: v for k, v in (("latent_dim", args.latent_dim), ("num_classes", args.num_classes)) if v}
    return load_generator(args.generator, **options, **({"conditional": True} if args.conditional else {}))


def cmd_generator_train(args) -> None:
    from ..atomic import write_json
    from ..generators.train import GeneratorTrainer, TrainOptions, check_options, resolve_device, resolve_precision
    from ..runs import new_run_dir

    options = TrainOptions(model=args.model, latent_dim=args.latent_dim, code_grid=args.code_grid, prior_bandwidth=args.prior_bandwidth,
                           width=args.width, batch_size=args.batch_size, lr=args.lr, lr_schedule=args.lr_schedule,
                           minutes=args.minutes, steps=args.steps, adversarial_start=args.adversarial_start, adversarial_weight=args.adversarial_weight,
                           flip=args.flip, seed=args.seed, sample_every=args.sample_every, checkpoint_every=args.checkpoint_every)
    if options.minutes is None and options.steps is None and not args.resume:
        raise TeachsetError("give a budget: --minutes M and/or --steps N")
    resolve_precision(args.precision, resolve_device(args.device))  # before anything is loaded or written
    dataset = load_dataset(args)
    command = command_line()
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


def _generator_dataset(generator, args):
    """The dataset a generator was trained on (recorded in its checkpoint), or --dataset."""
    from ..data import load_dataset

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
    from ..data.splits import stratified_holdout
    from ..generators.quality import evaluate_generator, format_quality

    generator = load_generator_from_args(args)
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

    from ..atomic import write_json
    from ..generators.invert import invert, to_uint8
    from ..teaching_set import TeachingSet

    generator = load_generator_from_args(args)
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


def add_commands(sub) -> None:
    p = add_command(sub, "generator", None, "train, evaluate and invert image generators", """
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
    add_dataset_args(q)
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

    q = gcommand("eval", cmd_generator_eval, "measure a generator against held-out real images (KID/FID with floor, class consistency, diversity, two-sample, memorisation)", """
teachset generator eval runs/00003-generator-elpv-64px/checkpoint
teachset generator eval stylegan.pt --latent-dim 512 --num-classes 2 --conditional --dataset my_cells/
""")
    add_generator_args(q)
    add_dataset_args(q, positional=False)
    q.add_argument("--dataset", default=None, help="the real images (default: the dataset recorded in the checkpoint)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--out", default=None, help="output folder (default: eval/ beside the checkpoint)")

    q = gcommand("invert", cmd_generator_invert, "find latent codes that reproduce a teaching set's images; write them as a teaching set", """
teachset generator invert runs/00003-generator-elpv-64px/checkpoint sets/elpv-kcenters --out sets/kcenters-inverted
teachset generator invert teachset:elpv-64 sets/elpv-medoids --steps 500 --out sets/medoids-inverted
""")
    add_generator_args(q)
    q.add_argument("teaching_set", help="a teaching-set folder")
    q.add_argument("--steps", type=int, default=200, help="optimisation steps after the encoder (default 200)")
    q.add_argument("--lr", type=float, default=0.03)
    q.add_argument("--out", required=True, help="the teaching-set folder to write")
    q.add_argument("--overwrite", action="store_true")

