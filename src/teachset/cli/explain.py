"""`teachset explain SET --generator G`: for each teaching image, how it would look as each other class."""

from __future__ import annotations

from .common import add_command, add_feature_args, add_options, options_from


def cmd_explain(args) -> None:
    from ..data import load_dataset
    from ..data.splits import Split
    from ..explain import ExplainOptions, explain
    from ..methods import TeachingData
    from ..teaching_set import TeachingSet
    from .generator import load_generator_from_args

    options = options_from(args, ExplainOptions)
    teaching_set = TeachingSet.load(args.teaching_set)
    generator = load_generator_from_args(args)
    dataset = load_dataset(**teaching_set.dataset["spec"])
    train, _ = TeachingData.load(dataset, args.extractor, args.input_size).split(Split.from_record(teaching_set.dataset.get("split")))
    folder = explain(teaching_set, generator, train, options, progress=True)
    print(f"explanations of {len(teaching_set)} images: {folder}")


def add_commands(sub) -> None:
    from ..explain import ExplainOptions
    from .generator import add_generator_args

    p = add_command(sub, "explain", cmd_explain, "counterfactual aids: for each teaching image, a strip of how it would look as "
                    "each other class, and where it changes", """
teachset explain runs/00004-run-elpv/teaching_sets/elpv/mobilenet_v2/herding/5pc/seed0 --generator teachset:elpv-64
teachset explain sets/latent --generator runs/00002-generator-cells-64px/checkpoint --frames 7 --proximity-weight 3
""")
    p.add_argument("teaching_set", help="a teaching-set folder (its explanations are written into it)")
    add_generator_args(p, positional=False)
    add_feature_args(p)
    add_options(p, ExplainOptions)
