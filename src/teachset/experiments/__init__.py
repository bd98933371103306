"""Experiments: grids of datasets x extractors x methods x per-class counts x seeds, run through
one executor (in process, a local pool, or Ray), stored as they finish, viewed as reports."""

from .engine import run_grid, write_views
from .spec import Experiment, build_experiment, dataset_experiment, experiment_from_record, load_experiment
from .store import Store

__all__ = ["Experiment", "Store", "build_experiment", "dataset_experiment", "experiment_from_record", "load_experiment",
           "run_grid", "write_views"]
