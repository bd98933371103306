"""forgetting: example forgetting events (Toneva et al. 2019).

An LC (linear softmax on the standardised features of all of D) is trained with minibatch SGD
with momentum; each time an example is in a minibatch its prediction is recorded before the
update. A forgetting event is a correct -> incorrect transition between two presentations.
Examples never classified correctly count as most forgotten (infinitely many events). Per class
the most forgotten are chosen (order="most", the default) or the least (order="least"); ties
are broken at random with the seed.
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..options import option
from ..seeded import seeded_init
from .base import SelectionMethod, each_class, register


def forgetting_counts(features: np.ndarray, labels: np.ndarray, *, epochs: int, batch_size: int, lr: float,
                      rng: np.random.Generator) -> np.ndarray:
    """Forgetting events per example (float; inf for never-learned examples)."""
    X = torch.from_numpy(((features - features.mean(0)) / (features.std(0) + 1e-6)).astype(np.float32))
    y = torch.from_numpy(labels)
    n, d = X.shape
    model = seeded_init(torch.nn.Linear(d, int(labels.max()) + 1), torch.Generator().manual_seed(int(rng.integers(2**31))))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    previous = np.zeros(n, dtype=bool)
    learned = np.zeros(n, dtype=bool)
    events = np.zeros(n)
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            batch = order[start : start + batch_size]
            logits = model(X[batch])
            correct = (logits.argmax(1) == y[batch]).numpy()
            events[batch] += previous[batch] & ~correct
            learned[batch] |= correct
            previous[batch] = correct
            opt.zero_grad()
            F.cross_entropy(logits, y[batch]).backward()
            opt.step()
    events[~learned] = np.inf
    return events


@register
@dataclass
class Forgetting(SelectionMethod):
    name = "forgetting"
    summary = "most-forgotten examples per class (Toneva et al.)"
    order: str = option("most", "the most forgotten examples of each class, or the least", choices=("most", "least"))
    epochs: int = option(20, "epochs of minibatch SGD over the whole dataset", minimum=1)
    batch_size: int = option(64, "minibatch size", minimum=1)
    lr: float = option(0.01, "SGD learning rate (momentum 0.9)", above=0)

    def select(self, features, labels, per_class, rng):
        counts = forgetting_counts(features, labels, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, rng=rng)
        sign = -1.0 if self.order == "most" else 1.0
        tiebreak = rng.random(len(labels))
        return each_class(labels, per_class, lambda m: np.lexsort((tiebreak[m], sign * counts[m]))[:per_class])
