"""Generator quality, measured against held-out real images, never assumed.

All metrics use one feature space (default: ImageNet MobileNetV2, images resized to 128 px).
Every kind of generator is measured the same way (its samples are generated with their labels):
- KID (unbiased MMD^2, cubic polynomial kernel, mean and sd over random subsets) and FID, each
  beside its real-vs-real floor (real training images against the held-out ones);
- class consistency: a logistic regression trained on real training features labels the
  generated images; read it against the same classifier on held-out real images and against
  always answering the majority class;
- within-class diversity: mean pairwise feature distance, generated over real (1.0 = as diverse);
  KID alone does not catch collapse;
- two-sample accuracy: a classifier telling real from generated (0.5 = indistinguishable);
- memorisation: each generated image's nearest real training image; the median distance, over
  the same for held-out real images (well below 1.0 = copying).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import linalg
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .. import defaults
from ..data import ImageDataset
from ..data.splits import stratified_holdout
from ..distances import sq_distances
from ..errors import OptionError, TeachsetError
from .base import Generator

INPUT_SIZE = 128  # images are resized to this size before the extractor


def kid(real: np.ndarray, fake: np.ndarray, subsets: int = 50, subset_size: int = 200, seed: int = 0) -> tuple[float, float]:
    """Kernel inception distance: mean and sd of the unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3."""
    rng = np.random.default_rng(seed)
    m = min(subset_size, len(real), len(fake))
    d = real.shape[1]
    values = []
    for _ in range(subsets):
        x = real[rng.choice(len(real), m, replace=False)].astype(np.float64)
        y = fake[rng.choice(len(fake), m, replace=False)].astype(np.float64)
        kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
        values.append((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())
    return float(np.mean(values)), float(np.std(values))


def fid(real: np.ndarray, fake: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to the two feature sets."""
    mu1, mu2 = real.mean(0), fake.mean(0)
    ridge = 1e-6 * np.eye(real.shape[1])  # fewer samples than dimensions make the covariances singular
    s1, s2 = np.cov(real, rowvar=False) + ridge, np.cov(fake, rowvar=False) + ridge
    covmean = linalg.sqrtm(s1 @ s2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean.real))


def mean_pairwise_distance(features: np.ndarray) -> float:
    d = np.sqrt(sq_distances(features, features))
    n = len(features)
    return float(d.sum() / (n * (n - 1))) if n > 1 else 0.0


def two_sample_accuracy(real: np.ndarray, fake: np.ndarray, seed: int = 0) -> float:
    """5-fold accuracy of a logistic regression telling real from generated (balanced)."""
    rng = np.random.default_rng(seed)
    n = min(len(real), len(fake))
    X = np.concatenate([real[rng.choice(len(real), n, replace=False)], fake[rng.choice(len(fake), n, replace=False)]])
    y = np.repeat([0, 1], n)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    return float(cross_val_score(model, X, y, cv=StratifiedKFold(5, shuffle=True, random_state=seed)).mean())


@dataclass
class RealReference:
    """Real features split into training and held-out parts, with their labels."""

    train: np.ndarray
    train_labels: np.ndarray
    held: np.ndarray
    held_labels: np.ndarray

    def __post_init__(self):
        self.classifier = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))
        self.classifier.fit(self.train, self.train_labels)

    def floor(self, seed: int = 0) -> dict:
        """The held-out real images scored as if generated: what a perfect generator would reach."""
        return self.compare(self.held, self.held_labels, seed, two_sample_real=self.train)

    def compare(self, fake: np.ndarray, fake_labels: np.ndarray, seed: int = 0, two_sample_real: np.ndarray | None = None) -> dict:
        kid_mean, kid_sd = kid(self.train, fake, seed=seed)
        real_div = [mean_pairwise_distance(self.held[self.held_labels == c]) for c in np.unique(self.held_labels)]
        fake_div = [mean_pairwise_distance(fake[fake_labels == c]) for c in np.unique(self.held_labels)]
        nearest = lambda f: np.sqrt(sq_distances(f, self.train).min(1))
        return {
            # FID's bias falls with the sample size: score as many images as the floor's held-out set
            "kid": kid_mean, "kid_sd": kid_sd, "fid": fid(self.train, fake[: len(self.held)]),
            "class_consistency": float((self.classifier.predict(fake) == fake_labels).mean()),
            "diversity_vs_real": float(np.mean(fake_div) / np.mean(real_div)),
            "two_sample_accuracy": two_sample_accuracy(self.held if two_sample_real is None else two_sample_real, fake, seed),
            "nearest_train_distance_vs_real": float(np.median(nearest(fake)) / np.median(nearest(self.held))),
            "n": len(fake),
        }

    def majority_rate(self) -> float:
        return float(np.bincount(self.held_labels).max() / len(self.held_labels))


@torch.no_grad()
def generate_in_batches(generator: Generator, z: torch.Tensor, y: torch.Tensor, batch: int = 128) -> torch.Tensor:
    """Images of codes z of classes y (every kind takes the labels; conditional ones need them)."""
    return torch.cat([generator.generate(z[i : i + batch], y[i : i + batch]) for i in range(0, len(z), batch)])


def generator_dataset(generator: Generator, dataset: ImageDataset | None = None) -> ImageDataset:
    """The real images to measure `generator` against: `dataset`, or the one its checkpoint records."""
    if dataset is None:
        recorded = getattr(generator, "meta", {}).get("dataset")
        if not recorded:
            raise OptionError("dataset", "this generator records no dataset; give the real images as {option}")
        from ..data import load_dataset

        dataset = load_dataset(**recorded["spec"])
    if (dataset.image_size, dataset.channels) != (generator.image_size, generator.channels):
        raise TeachsetError(f"the generator makes {generator.channels}x{generator.image_size}px images but the dataset has "
                            f"{dataset.channels}x{dataset.image_size}px; load the dataset at the generator's size")
    return dataset


def held_out_for(generator: Generator, dataset: ImageDataset, seed: int = 0, fraction: float = 0.2) -> list[str]:
    """Ids of real images the generator did not train on: those its checkpoint records where the
    dataset holds them all, else a stratified `fraction` of each class."""
    recorded = getattr(generator, "meta", {}).get("held_out_ids")
    if recorded and set(recorded) <= set(dataset.ids):
        return list(recorded)
    return [dataset.ids[i] for i in stratified_holdout(dataset.labels, fraction, seed)[1]]


def evaluate_generator(generator: Generator, dataset: ImageDataset | None = None, held_out_ids: list[str] | None = None,
                       out_dir: str | Path = "generator-eval", seed: int = 0, extractor: str = defaults.EXTRACTOR,
                       input_size: int | None = INPUT_SIZE, samples_per_image: int = 4) -> dict:
    """All metrics for prior samples and for reconstructions of held-out images (where the
    generator has an encoder), with the real-vs-real floor; writes quality.json and one sample grid
    per class into out_dir. `dataset` defaults to the one the checkpoint records, `held_out_ids` to
    `held_out_for`. `samples_per_image` prior samples are drawn per held-out image, with its
    class: one each leaves class consistency a wide binomial spread on a few hundred images."""
    from ..atomic import write_json
    from ..features import build_extractor, dataset_features, extract
    from ..imaging import save_grid

    dataset = generator_dataset(generator, dataset)
    held_out_ids = held_out_for(generator, dataset, seed) if held_out_ids is None else held_out_ids
    out_dir = Path(out_dir)
    held_set = set(held_out_ids)
    held_index = np.array([i for i, image_id in enumerate(dataset.ids) if image_id in held_set])
    train_index = np.setdiff1d(np.arange(len(dataset)), held_index)
    features = dataset_features(dataset, extractor, input_size)
    reference = RealReference(features[train_index], dataset.labels[train_index], features[held_index], dataset.labels[held_index])
    net = build_extractor(extractor, input_size)

    labels = torch.from_numpy(dataset.labels[held_index])
    sample_labels = labels.repeat(samples_per_image)
    z = generator.sample_latents(sample_labels, torch.Generator().manual_seed(seed))
    samples = generate_in_batches(generator, z, sample_labels.to(z.device)).cpu()
    sample_features = extract(net, samples)
    results = {"extractor": f"{extractor} at {input_size} px", "majority_rate": reference.majority_rate(),
               "floor": reference.floor(seed), "samples": reference.compare(sample_features, sample_labels.numpy(), seed)}
    try:
        with torch.no_grad():
            held = dataset.tensor(held_index)
            recon = torch.cat([generator.generate(generator.encode(held[i : i + 128]), labels[i : i + 128])
                               for i in range(0, len(held), 128)])
        results["reconstructions"] = reference.compare(extract(net, recon), labels.numpy(), seed)
    except TeachsetError:  # generators without an encoder have no reconstructions to score
        pass
    grids = []
    for c, name in enumerate(dataset.class_names):
        members = np.flatnonzero(sample_labels.numpy() == c)[:16]
        nearest = train_index[sq_distances(sample_features[members], features[train_index]).argmin(1)]
        rows = torch.cat([samples[members[:8]], dataset.tensor(nearest[:8]), samples[members[8:16]], dataset.tensor(nearest[8:16])])
        grids.append(str(save_grid(rows, out_dir / f"samples_{c}_{name}.png", ncol=8)))
    results["grids"] = grids
    results["grid_layout"] = "rows 1 and 3: samples from the class prior; rows 2 and 4: each sample's nearest real training image"
    write_json(out_dir / "quality.json", results)
    return results


def format_quality(results: dict) -> str:
    keys = ["kid", "fid", "class_consistency", "diversity_vs_real", "two_sample_accuracy", "nearest_train_distance_vs_real"]
    rows = [("real held-out (floor)", results["floor"]), ("samples from the prior", results["samples"])]
    if "reconstructions" in results:
        rows.append(("reconstructions of held-out", results["reconstructions"]))
    lines = [f"{'':<30}" + "".join(f"{k:>16}" for k in ["KID", "FID", "class-consist.", "diversity", "two-sample acc", "nearest-real"])]
    for name, r in rows:
        lines.append(f"{name:<30}" + "".join(f"{r[k]:>16.3f}" for k in keys))
    lines.append(f"(always answering the majority class: {results['majority_rate']:.3f}; features: {results['extractor']})")
    return "\n".join(lines)
