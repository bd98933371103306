"""Generative Teaching Networks (Such et al., ICML 2020): a generator meta-trained so that fresh
learners trained for a few SGD steps on its output do well on real data; with the controls
(real samples, dataset distillation), ensembles and an architecture-search proxy."""

from .learners import LearnerSpec, forward, init_params, search_space, weight_norm
from .train import GTNOptions, GTNTrainer, few_step_accuracy, train_learner

__all__ = ["GTNOptions", "GTNTrainer", "LearnerSpec", "few_step_accuracy", "forward", "init_params", "search_space",
           "train_learner", "weight_norm"]
