"""gtn: the images of a trained Generative Teaching Network (Such et al. 2020), exported as a
teaching set: `per_class` generated images of each class, evenly spaced over the learned
curriculum (the seed draws the curriculum's noise where it is not learned). Train one with
`teachset gtn train`; its checkpoint records the dataset it was trained on."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import OptionError, TeachsetError
from ..options import option
from ..teaching_set import TeachingSet
from .base import Method, TeachingData, register


@register
@dataclass
class GTNExport(Method):
    name = "gtn"
    summary = "the images of a trained Generative Teaching Network (Such et al.)"
    kind = "generated"
    checkpoint: str = option("", "a GTN checkpoint folder (RUN/checkpoint, written by `teachset gtn train`)", flag=False)

    def make(self, data: TeachingData, per_class: int, seed: int = 0, progress: bool = False) -> TeachingSet:
        from ..gtn.artifacts import export_teaching_set, load_checkpoint

        if not self.checkpoint:
            raise OptionError("checkpoint", "the gtn method needs a {option}: the checkpoint folder of a `teachset gtn train` run")
        options, teacher, config = load_checkpoint(self.checkpoint)
        if config["dataset"]["fingerprint"] != data.dataset.record()["fingerprint"]:
            raise TeachsetError(f"the GTN in '{self.checkpoint}' was trained on another dataset ({config['dataset']['name']}, "
                                f"{config['image_shape'][-1]} px); load that dataset at that size")
        data.dataset.check_per_class(per_class)
        ts = export_teaching_set(teacher, options, data.dataset.record(), data.dataset.class_names, per_class, seed)
        ts.params = {**self.record(data, per_class), "gtn": ts.params}
        return ts
