"""Generative Teaching Networks (Such et al., ICML 2020): a generator meta-trained so that fresh
learners trained for a few SGD steps on its output do well on real data; with the controls
(real samples, dataset distillation), ensembles and an architecture-search proxy.

    trainer = GTNTrainer(GTNOptions(outer_steps=300)).fit(train_images, train_labels, test_images, test_labels)
    trainer.evaluate(10)                     # few-step test accuracy of 10 fresh learners
    train_gtn(dataset, GTNOptions(), RunOptions(), out="runs")   # the whole run folder, as `teachset gtn train`
"""

from .learners import LearnerSpec, forward, init_params, search_space, weight_norm
from .options import GTNOptions, check_data
from .run import RunOptions, train_gtn
from .train import GTNTrainer, few_step_accuracy, train_learner

__all__ = ["GTNOptions", "GTNTrainer", "LearnerSpec", "RunOptions", "check_data", "few_step_accuracy", "forward",
           "init_params", "search_space", "train_gtn", "train_learner", "weight_norm"]
