"""Teaching methods: one file each, one registry (METHODS), one result type (TeachingSet).

Selection (real images): random, kcenters, forgetting, herding, medoids. Generated: latent (the
machine teacher in a generator's latent space), pixels (the same teacher on pixels), gtn (the
images of a trained Generative Teaching Network).
"""

from . import forgetting, herding, kcenters, medoids, random  # noqa: F401  (each registers itself, in this order)
from . import latent, pixels, gtn  # noqa: F401,E402
from .base import METHODS, Method, SelectionMethod, TeachingData, make_method, method_names
from .teacher import snap_to_real

__all__ = ["METHODS", "Method", "SelectionMethod", "TeachingData", "make_method", "method_names", "snap_to_real"]
