"""Architecture-search proxy (Such et al. 2020, Fig. 3c): rank learner architectures by their
few-step accuracy on GTN data, and compare that ranking with the ranking by real-data training.

For each architecture: `proxy` = test accuracy after `few_steps` steps on the teacher (with its
learned learning rate and momentum); `real_few` = the same budget on real samples (the obvious
cheap alternative); `real` = test accuracy after `real_steps` steps on real data (SGD, lr 0.05,
momentum 0.9), the stand-in for an architecture's true quality. Spearman rank correlations:
all architectures, and the top half by the proxy (the figure the paper reports). A GTN meant as a
proxy for a whole space should be meta-trained on it (`GTNOptions(sample_architectures=True)`: every
outer step's learner is drawn from `search_space()`); one meta-trained for a single learner teaches
other architectures worse, and unevenly.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import spearmanr

from .learners import LearnerSpec
from .teachers import InnerHyper, RealTeacher
from .train import few_step_accuracy


def _spearman(a, b) -> float:
    return float(spearmanr(a, b).statistic) if len(a) > 2 else float("nan")


def rank_architectures(teachers: dict, specs: list[LearnerSpec], train_images: torch.Tensor, train_labels: torch.Tensor,
                       test_images: torch.Tensor, test_labels: torch.Tensor, num_classes: int, few_steps: int = 32,
                       real_steps: int = 300, batch_size: int = 64, learners: int = 1, seed: int = 0,
                       progress: bool = False) -> dict:
    """`teachers`: name -> teacher (GTNs, or any teacher) whose few-step accuracy is a proxy. The real
    few-step control uses the first teacher's learned learning rate and momentum."""
    from tqdm import tqdm

    first = next(iter(teachers.values()))
    real_few_teacher = RealTeacher(train_images, train_labels, batch_size, first.hyper)
    real_teacher = RealTeacher(train_images, train_labels, batch_size, InnerHyper(0.05, 0.9))
    seeds = range(seed, seed + learners)
    rows = []
    for spec in tqdm(specs, desc="architectures", unit="arch", disable=not progress):
        def score(source, steps):
            return few_step_accuracy(source, spec, steps, test_images, test_labels, seeds, num_classes)["mean"]
        rows.append({"architecture": spec.describe(), "proxy": {name: score(t, few_steps) for name, t in teachers.items()},
                     "real_few": score(real_few_teacher, few_steps), "real": score(real_teacher, real_steps)})
    real, real_few = (np.array([r[k] for r in rows]) for k in ("real", "real_few"))
    result = {"rows": rows, "spearman_real_few": _spearman(real_few, real),
              "best_by_real": rows[int(np.argmax(real))]["architecture"], "proxies": {}}
    for name in teachers:
        proxy = np.array([r["proxy"][name] for r in rows])
        top = np.argsort(-proxy)[: max(3, len(rows) // 2)]
        result["proxies"][name] = {"spearman": _spearman(proxy, real), "spearman_top_half": _spearman(proxy[top], real[top]),
                                   "best_by_proxy": rows[int(np.argmax(proxy))]["architecture"]}
    return result
