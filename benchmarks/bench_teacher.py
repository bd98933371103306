"""Teacher benchmark (issue: the latent teacher), on elpv with the default extractor, b = 10.

1. Cost of one teacher step against one forward+backward of F(G(z)) on the same codes, as a
   ratio measured in the same run, at 32, 64 and 128 px: LC with the implicit (Woodbury)
   hypergradient, LC unrolled through 50 gradient steps, and NN.
2. Wall time of the paper's protocol at 64 px: 1,000 teacher epochs x (at most) 50 student epochs.
3. Hypergradient agreement: relative error against central finite differences, and cosine
   similarity with differentiating through the unrolled inner optimisation run to convergence
   (Newton steps, differentiated end to end) and through 50 unrolled gradient steps.
4. Batched teachers: seconds per epoch and set of the default teacher at 64 px, one set alone against
   `--batched-sets` sets taught together (their images share each pass through the networks).
(How well the teachers teach is benchmarks/bench_teaching.py's.)

    .venv/bin/python benchmarks/bench_teacher.py [--teacher-epochs 1000] [--skip-protocol]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from teachset.data import load_dataset
from teachset.features import build_extractor, dataset_features
from teachset.generators import load_generator
from teachset.generators.autoencoder import Autoencoder
from teachset.hypergrad import LCHessian, augment, implicit_surrogate, inner_grad, newton, outer_loss_and_grad, unrolled_theta
from teachset.methods import TeachingData, make_method
from teachset.methods.teacher import Teacher, TeacherOptions, balanced_labels


def generator_for(size: int):
    if size == 64:
        return load_generator("teachset:elpv-64")
    torch.manual_seed(0)  # same architecture, timing does not depend on the weights
    return Autoencoder(image_size=size, width=16, num_classes=2, class_names=["defective", "functional"]).freeze()


def paired_ms(fns: dict, repeats: int) -> dict:
    """Median ms of each function, timed in turn within every repeat so drift hits all alike."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def step_costs(size: int, repeats: int) -> dict:
    dataset = load_dataset("elpv", image_size=size)
    features = dataset_features(dataset, progress=False)
    generator, extractor = generator_for(size), build_extractor()
    labels = balanced_labels(2, 5)
    z = generator.sample_latents(labels, torch.Generator().manual_seed(0)).requires_grad_(True)

    def images_pass():
        z.grad = None
        extractor(generator.generate(z, labels)).sum().backward()

    teachers = {name: Teacher(TeacherOptions(student=s, hypergradient=h, lr=1e-6, views=0, extractors=()), lambda q: generator.generate(q, labels), labels,
                              extractor).reset(z, features, dataset.labels)
                for name, s, h in (("lc-implicit", "lc", "implicit"), ("lc-unrolled", "lc", "unrolled"), ("nn", "nn", "implicit"))}
    return paired_ms({"pass": images_pass, **{name: teacher.step for name, teacher in teachers.items()}}, repeats)


def protocol_wall_time(epochs: int) -> float:
    data = TeachingData.load(load_dataset("elpv", image_size=64), progress=False)
    start = time.perf_counter()
    make_method("latent", generator="teachset:elpv-64", student="lc", epochs=epochs).make(data, 5, progress=True)
    return time.perf_counter() - start


def batched_seconds(sets: int, epochs: int) -> float:
    """Median seconds per epoch and set of the default teacher with `sets` sets taught together."""
    data = TeachingData.load(load_dataset("elpv", image_size=64), progress=False)
    made = make_method("latent", generator="teachset:elpv-64", start="prior", epochs=epochs).make_many(data, 5, list(range(sets)))
    return statistics.median(record["seconds"] for record in made[0].curve[1:])


def agreement() -> dict:
    dataset = load_dataset("elpv", image_size=64)
    features = torch.from_numpy(dataset_features(dataset, progress=False)).double()
    data, data_labels = augment(features), torch.from_numpy(dataset.labels)
    teaching = make_method("random").make(TeachingData(dataset, features.numpy().astype("float32")), per_class=5, seed=0)
    index = [dataset.ids.index(i) for i in teaching.source_ids]
    phi0, y, l2 = features[index].clone(), torch.from_numpy(teaching.labels), 1e-3
    theta0 = torch.zeros(2, phi0.shape[1] + 1, dtype=torch.float64)

    def outer(phi):
        theta = newton(augment(phi), y, theta0, l2, max_iter=100, tol=1e-14)
        return outer_loss_and_grad(theta, data, data_labels)[0]

    phi = phi0.clone().requires_grad_(True)
    theta = newton(augment(phi0), y, theta0, l2)
    g = outer_loss_and_grad(theta, data, data_labels)[1]
    implicit_surrogate(augment(phi), y, theta, g, l2).backward()
    implicit = phi.grad.clone()
    errors = {}  # central differences along 5 random directions, at several step sizes
    for eps in (1e-3, 1e-4, 1e-5, 1e-6):
        for k in range(5):
            direction = torch.randn(phi0.shape, generator=torch.Generator().manual_seed(k), dtype=torch.float64)
            fd = (outer(phi0 + eps * direction) - outer(phi0 - eps * direction)) / (2 * eps)
            errors[eps] = max(errors.get(eps, 0.0), float(abs(fd - (implicit * direction).sum()) / abs(fd)))

    def unrolled_gradient(unroll):
        p = phi0.clone().requires_grad_(True)
        theta = unroll(augment(p))
        torch.nn.functional.cross_entropy(data @ theta.T, data_labels).backward()
        return p.grad

    def differentiable_newton(phi_aug, iterations=20):
        theta = theta0
        for _ in range(iterations):
            theta = theta - LCHessian(theta, phi_aug, l2).solve(inner_grad(theta, phi_aug, y, l2))
        return theta

    cosine = lambda a, b: float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))
    return {**{f"finite_difference_relative_error_max_eps{eps:g}": e for eps, e in errors.items()},
            "cosine_vs_unrolled_newton_to_convergence": cosine(implicit, unrolled_gradient(differentiable_newton)),
            "cosine_vs_50_unrolled_gradient_steps": cosine(implicit, unrolled_gradient(lambda a: unrolled_theta(a, y, theta0, l2, 50, 0.5)))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--teacher-epochs", type=int, default=1000)
    parser.add_argument("--skip-protocol", action="store_true")
    parser.add_argument("--batched-sets", type=int, default=5)
    parser.add_argument("--batched-epochs", type=int, default=20)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| size | F(G(z)) fwd+bwd ms | LC implicit ms (ratio) | LC unrolled-50 ms (ratio) | NN ms (ratio) |\n|---|---|---|---|---|")
    for size in (32, 64, 128):
        c = step_costs(size, args.repeats)
        cells = " | ".join(f"{c[k]:.1f} ({c[k] / c['pass']:.3f})" for k in ("lc-implicit", "lc-unrolled", "nn"))
        print(f"| {size} | {c['pass']:.1f} | {cells} |", flush=True)
    print()
    for key, value in agreement().items():
        print(f"{key}: {value:.3e}" if "error" in key else f"{key}: {value:.6f}")
    alone, together = (batched_seconds(k, args.batched_epochs) for k in (1, args.batched_sets))
    print(f"\ndefault teacher, s per epoch and set: alone {alone:.3f}, {args.batched_sets} together {together:.3f} "
          f"({alone / together:.2f}x)")
    if not args.skip_protocol:
        seconds = protocol_wall_time(args.teacher_epochs)
        print(f"\npaper protocol at 64 px ({args.teacher_epochs} teacher epochs x <= 50 Newton student epochs, LC): {seconds:.0f} s")


if __name__ == "__main__":
    main()
