"""`teachset select` and `teachset teach`: make a teaching set with a method of the registry."""

from __future__ import annotations

from pathlib import Path

from .. import defaults
from ..data.splits import Split
from .common import (add_command, add_dataset_args, add_feature_args, add_options, load_dataset, options_from,
                     parse_params)


def cmd_select(args) -> None:
    from ..methods import TeachingData, make_method

    method = make_method(args.method, **parse_params(args.param))
    data, _ = TeachingData.load(load_dataset(args), args.extractor, args.input_size).split(options_from(args, Split))
    ts = method.make(data, args.per_class, seed=args.seed, progress=True)
    out = ts.save(args.out or f"teaching_sets/{data.dataset.name}-{args.method}-seed{args.seed}", overwrite=args.overwrite)
    print(f"wrote {len(ts)} images ({ts.method}, seed {args.seed}) to {out}")


def cmd_teach(args) -> None:
    from ..errors import TeachsetError
    from ..methods import TeachingData, snap_to_real
    from ..methods.latent import LatentTeacher
    from ..methods.pixels import PixelTeacher
    from .generator import load_generator_from_args

    if args.space == "latent":
        if not args.generator:
            raise TeachsetError("the latent teacher needs --generator CHECKPOINT (or use --space pixels)")
        generator = load_generator_from_args(args)
        method, size = options_from(args, LatentTeacher, generator=generator), args.size or generator.image_size
    else:
        method, size = options_from(args, PixelTeacher), args.size or defaults.IMAGE_SIZE
    data, _ = TeachingData.load(load_dataset(args, size=size), args.extractor, args.input_size).split(options_from(args, Split))
    student = "proxy" if args.proxy else args.student
    out = Path(args.out or f"teaching_sets/{data.dataset.name}-{args.space}-{student}-seed{args.seed}")
    if out.exists() and not args.overwrite:
        raise TeachsetError(f"'{out}' already exists; choose another --out or pass --overwrite")
    ts = method.make(data, args.per_class, seed=args.seed, progress=True)
    ts.save(out, overwrite=args.overwrite)
    first, last = ts.curve[0]["proxy_accuracy"], ts.curve[-1]["proxy_accuracy"]
    print(f"{ts.method}: {len(ts.curve)} teacher epochs, proxy accuracy {first:.3f} -> {last:.3f}; wrote {out} (curve.jsonl inside)")
    if args.snap_to_real:
        snapped = snap_to_real(ts, data).save(out.with_name(out.name + "-snapped"), overwrite=args.overwrite)
        print(f"nearest real images: {snapped}")


def add_commands(sub) -> None:
    from ..methods import METHODS
    from ..methods.latent import LatentTeacher

    p = add_command(sub, "select", cmd_select, "make a teaching set with a method of the registry (real images picked by a "
                    "selection method, or any other method given its parameters) and save it", f"""
teachset select elpv --method kcenters --per-class 5 --out sets/elpv-kcenters
teachset select elpv --method forgetting --param order=least --seed 3 --out sets/least-forgotten
teachset select my_images/ --method medoids --per-class 3 --size 128 --out sets/mine
teachset select mnist --size 28 --method gtn --param checkpoint=runs/00004-gtn-mnist-gtn/checkpoint --out sets/gtn
methods: {', '.join(f'{m} ({c.summary})' for m, c in METHODS.items())}
""")
    add_dataset_args(p)
    add_feature_args(p)
    add_options(p, Split)
    p.add_argument("--method", required=True, choices=list(METHODS))
    p.add_argument("--per-class", type=int, default=defaults.PER_CLASS, help=f"teaching images per class (default {defaults.PER_CLASS})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="a method parameter, e.g. order=least (repeatable)")
    p.add_argument("--out", default=None, help="the teaching-set folder to write (default teaching_sets/<dataset>-<method>-seed<seed>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing folder")

    p = add_command(sub, "teach", cmd_teach, "machine teaching: optimise a teaching set in a generator's latent space (or in "
                    "pixel space) against a proxy student", """
teachset teach elpv --student lc --generator teachset:elpv-64          # the generator bundled for elpv at 64 px
teachset teach elpv --student nn --generator runs/00003-generator-elpv-64px/checkpoint --epochs 300
teachset teach elpv --student lc --generator teachset:elpv-64 --init sets/elpv-medoids --snap-to-real
teachset teach elpv --space pixels --student lc --epochs 500           # dataset distillation, the control
teachset teach elpv --generator teachset:elpv-64 --proxy studies/cells/calibration/proxy.json   # a calibrated proxy
""")
    add_dataset_args(p, size=None)
    add_feature_args(p)
    add_options(p, Split)
    p.add_argument("--space", choices=["latent", "pixels"], default="latent", help="optimise latent codes (default) or pixels")
    from .generator import add_generator_args

    add_generator_args(p, positional=False)
    add_options(p, LatentTeacher)
    p.add_argument("--init", default=None, help="start from this teaching set (its latent codes, or its images inverted)")
    p.add_argument("--per-class", type=int, default=defaults.PER_CLASS, help=f"teaching images per class (default {defaults.PER_CLASS})")
    p.add_argument("--snap-to-real", action="store_true", help="also write the nearest real images (OUT-snapped)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None)
    p.add_argument("--overwrite", action="store_true")
