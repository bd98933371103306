"""`teachset generator train | eval | invert`: image generators for the latent teacher."""

from __future__ import annotations

from pathlib import Path

from .. import defaults
from ..data.splits import Split
from .common import add_command, add_dataset_args, add_options, command_line, load_dataset, options_from


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
    from ..generators.devices import resolve_device, resolve_precision
    from ..generators.train import TrainOptions, resume_generator, train_generator

    options, split = options_from(args, TrainOptions), options_from(args, Split)  # refused before anything is loaded
    resolve_precision(args.precision, resolve_device(args.device))
    if args.resume:  # the dataset the run recorded, whatever the flags' defaults say
        from ..runs import run_options

        spec = run_options(args.resume, "generator")["dataset"]
        for key, flag in (("image_size", "size"), ("channels", "channels"), ("skip_bad", "skip_bad"), ("classes", "classes")):
            setattr(args, flag, spec.get(key))
        args.dataset = spec["source"]
    dataset = load_dataset(args)
    place = {"device": args.device, "precision": args.precision, "command": command_line()}
    if args.resume:
        trainer = resume_generator(args.resume, dataset, minutes=args.minutes, steps=args.steps, **place)
    else:
        trainer = train_generator(dataset, options, args.out, split=split, **place)
    print(f"generator: {trainer.checkpoint_} ({trainer.step_} steps, {trainer.elapsed_ / 60:.1f} min); "
          f"samples in {trainer.run_dir / 'samples'}")


def cmd_generator_eval(args) -> None:
    from ..generators.quality import evaluate_generator, format_quality

    generator = load_generator_from_args(args)
    dataset = load_dataset(args, size=args.size or generator.image_size) if args.dataset else None
    out = Path(args.out or (Path(args.generator).parent / "eval" if Path(args.generator).is_dir() else "generator-eval"))
    results = evaluate_generator(generator, dataset, out_dir=out, seed=args.seed, extractor=args.extractor, input_size=args.input_size)
    print(format_quality(results))
    print(f"quality.json and sample grids (with each sample's nearest real image) in {out}")


def cmd_generator_invert(args) -> None:
    from ..atomic import write_json
    from ..generators.invert import invert_teaching_set
    from ..teaching_set import TeachingSet

    inverted, report = invert_teaching_set(load_generator_from_args(args), TeachingSet.load(args.teaching_set), args.steps, args.lr)
    inverted.save(args.out, overwrite=args.overwrite)
    write_json(Path(args.out) / "inversion.json", report)
    e, r = report["encoder"], report["refined"]
    print(f"LPIPS-AlexNet {e['lpips_alexnet']:.3f} -> {r['lpips_alexnet']:.3f}, LPIPS-VGG {e['lpips_vgg16']:.3f} -> "
          f"{r['lpips_vgg16']:.3f}, feature distance {e['feature_distance']:.3f} -> {r['feature_distance']:.3f} (encoder -> refined)")
    print(f"wrote the inverted teaching set (with its latent codes) to {args.out}")


def add_commands(sub) -> None:
    from ..generators.devices import PRECISIONS
    from ..generators.quality import INPUT_SIZE
    from ..generators.train import TrainOptions

    p = add_command(sub, "generator", None, "train, evaluate and invert image generators", """
teachset generator train elpv --minutes 30 --flip both
teachset generator eval runs/00003-generator-elpv-64px/checkpoint
teachset generator invert runs/00003-generator-elpv-64px/checkpoint sets/elpv-kcenters --out sets/kcenters-inverted
""")
    gsub = p.add_subparsers(dest="generator_command", required=True, metavar="COMMAND")

    def gcommand(name, func, help, examples):
        return add_command(gsub, name, func, help, examples)

    q = gcommand("train", cmd_generator_train, "train the autoencoder generator on a dataset, or a 2x stage on one (on a CPU or a GPU; resumable)", """
teachset generator train elpv --minutes 30 --flip both          # the recommended budget on 2 CPU cores
teachset generator train elpv --minutes 30 --flip both --code-grid 0 --latent-dim 128   # a code vector instead of a grid
teachset generator train my_cells/ --size 128 --steps 20000
teachset generator train elpv --model cgan --minutes 60         # a conditional GAN from scratch instead
teachset generator train elpv --minutes 60 --flip both --adversarial-weight 0.05   # with adversarial sharpening after 40%
teachset generator train elpv --resume runs/00003-generator-elpv-64px   # continue an interrupted run
teachset generator train elpv --size 128 --flip both --minutes 8 --device cuda   # on a GPU
teachset generator train elpv --size 128 --flip both --base teachset:elpv-64   # a 2x stage on a 64 px generator
""")
    add_dataset_args(q)
    add_options(q, TrainOptions)
    add_options(q, Split)
    q.add_argument("--resume", default=None, help="a run folder to continue (with its options; --minutes/--steps set a new total budget)")
    q.add_argument("--device", default="auto", help="auto (a CUDA GPU if there is one, else the CPU), cpu, cuda or cuda:N; "
                                                    "a run may resume on another device")
    q.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto: bfloat16 autocast on a CPU with native bfloat16 (AVX512-BF16/AMX), else float32")
    q.add_argument("--out", default=defaults.RUNS_DIR, help=f"where the numbered run folder is made (default {defaults.RUNS_DIR})")

    q = gcommand("eval", cmd_generator_eval, "measure a generator against held-out real images (KID/FID with floor, class "
                                             "consistency, diversity, two-sample, memorisation)", """
teachset generator eval runs/00003-generator-elpv-64px/checkpoint
teachset generator eval stylegan.pt --latent-dim 512 --num-classes 2 --conditional --dataset my_cells/
""")
    add_generator_args(q)
    add_dataset_args(q, positional=False, size=None)
    q.add_argument("--dataset", default=None, help="the real images (default: the dataset recorded in the checkpoint)")
    q.add_argument("--extractor", default=defaults.EXTRACTOR, help=f"the feature space of every metric (default {defaults.EXTRACTOR}; "
                                                                   "see `teachset features --list`)")
    q.add_argument("--input-size", type=int, default=INPUT_SIZE, help=f"images are resized to this before the extractor (default {INPUT_SIZE})")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--out", default=None, help="output folder (default: eval/ beside the checkpoint)")

    q = gcommand("invert", cmd_generator_invert, "find latent codes that reproduce a teaching set's images; write them as a teaching set", """
teachset generator invert runs/00003-generator-elpv-64px/checkpoint sets/elpv-kcenters --out sets/kcenters-inverted
teachset generator invert teachset:elpv-64 sets/elpv-medoids --steps 500 --out sets/medoids-inverted
""")
    add_generator_args(q)
    q.add_argument("teaching_set", help="a teaching-set folder")
    q.add_argument("--steps", type=int, default=200, help="optimisation steps after the encoder (default 200)")
    q.add_argument("--lr", type=float, default=0.03, help="Adam step on the codes (default 0.03)")
    q.add_argument("--out", required=True, help="the teaching-set folder to write")
    q.add_argument("--overwrite", action="store_true")
