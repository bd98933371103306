"""Import torchvision once, in one place, also where its compiled ops cannot load.

The torchvision wheel that pairs with the CPU-only torch here is a CUDA build: importing it
fails with "operator torchvision::nms does not exist" because its C++ ops do not load. teachset
uses only torchvision's model definitions, so when (and only when) the plain import fails we
declare the two operator schemas torchvision's Python code registers fake kernels for, and
import again. Every teachset module gets torchvision from here.
"""

import sys

import torch

_schemas: torch.library.Library | None = None


def _import():
    global _schemas
    try:
        import torchvision
    except RuntimeError as error:
        if "torchvision::nms" not in str(error):
            raise
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        _schemas = torch.library.Library("torchvision", "DEF")
        _schemas.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _schemas.define("qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor")
        import torchvision
    return torchvision


torchvision = _import()
models = torchvision.models
