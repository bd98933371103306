"""The defaults that several parts of teachset share, in one visible place.

Options dataclasses (students, teachers, generator training, GTN) and the command line read
their shared defaults from here; each part's own defaults live in its options dataclass.
"""

import os
from pathlib import Path

EXTRACTOR = "mobilenet_v2"  # the frozen human-proxy feature extractor
IMAGE_SIZE = 64  # square working size of images, in pixels
PER_CLASS = 5  # teaching images per class
REPEATS = 5  # fresh students (or teaching-set seeds) per evaluation cell
STUDENTS = ("lc", "nn")  # the proxy students every evaluation trains
RUNS_DIR = "runs"  # where numbered run folders are made

# The LC student (paper eq. 3): the same learner in the evaluation and inside the teacher.
LC_L2 = 1e-3  # l2 / 2 * (||W||^2 + ||b||^2): strongly convex, one optimum
LC_EPOCHS = 50  # at most this many Newton (or first-order) epochs

# The NN student (eq. 4): softmaxed similarities to the teaching images.
NN_SIMILARITY = "cosine"
NN_TEMPERATURE = 0.1
NN_RULE = "logsumexp"

# The held-out protocol: methods and generators see the train split, students are scored on the test split.
PROTOCOL = "heldout"  # or "paper": the paper's in-sample protocol (scored on every image not taught)
TEST_FRACTION = 0.2
SPLIT_SEED = 0  # one split for every method and seed of a run

# The teacher's default ensemble: its students are taught in these extractors' spaces besides EXTRACTOR.
TEACHER_EXTRACTORS = ("alexnet",)
# Students and realism in an extractor no teacher uses: does what a set teaches transfer, and does it look real?
TRANSFER_EXTRACTORS = ("vgg16",)
REALISM_EXTRACTOR = "vgg16"
NETWORK_MIN_SIZE = 64  # the second networks (ensemble, transfer, realism) see small images enlarged to this size


def network_input_size(extractor: str, image_size: int) -> int | None:
    """The input size a second network sees images of `image_size` at: enlarged to NETWORK_MIN_SIZE where
    smaller, else as they are (None); pixels are always the images themselves."""
    return NETWORK_MIN_SIZE if extractor != "pixels" and image_size < NETWORK_MIN_SIZE else None


def cache_dir() -> Path:
    """Where decoded datasets and features are kept: $TEACHSET_CACHE, else ~/.cache/teachset."""
    return Path(os.environ.get("TEACHSET_CACHE") or Path.home() / ".cache" / "teachset")
