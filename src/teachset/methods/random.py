"""random: `per_class` images of each class drawn uniformly without replacement."""

from dataclasses import dataclass


from .base import SelectionMethod, each_class, register


@register
@dataclass
class RandomSelection(SelectionMethod):
    name = "random"
    summary = "class-balanced uniform draw"

    def select(self, features, labels, per_class, rng):
        return each_class(labels, per_class, lambda members: rng.choice(len(members), per_class, replace=False))
