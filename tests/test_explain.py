"""Counterfactual aids: paths that raise the target class, stay near the start, and are written with the set."""


import pytest
import torch

from teachset.cli import main
from teachset.data import load_dataset
from teachset.explain import ExplainOptions, explain, load_explanations
from teachset.generators import save_generator
from teachset.generators.autoencoder import Autoencoder
from teachset.methods import TeachingData, make_method
from teachset.seeded import seeded_init


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    dataset = load_dataset("digits", image_size=32, classes="0,1")
    data = TeachingData.load(dataset, "pixels", progress=False)
    generator = seeded_init(Autoencoder(image_size=32, latent_dim=16, width=8, num_classes=2, class_names=["0", "1"]),
                            torch.Generator().manual_seed(0))
    folder = tmp_path_factory.mktemp("explain")
    save_generator(generator, folder / "generator", extra={"dataset": dataset.record()})
    return data, generator.freeze(), folder


def test_paths_raise_the_target_class_and_are_written_beside_the_set(setup):
    data, generator, folder = setup
    ts = make_method("kcenters").make(data, per_class=2)
    ts.save(folder / "set", overwrite=True)
    options = ExplainOptions(frames=4, steps=30, lr=0.1, extractors=("pixels",))
    written = explain(ts, generator, data, options)
    found = load_explanations(folder / "set")
    assert written == folder / "set" / "explanations" and len(found["paths"]) == 4  # each image towards the other class
    for path in found["paths"]:
        assert path["from"] != path["to"] and len(path["probabilities"]) == 4
        p = path["probabilities"]
        assert p[-1] > p[0]  # the target class rises along the path
        assert all(a <= b + 1e-6 for a, b in zip(p[:-1], p[1:-1]))  # frames spaced by the probability: step by step up
        assert (written / path["strip"]).is_file() and (written / path["change"]).is_file()
    from PIL import Image

    with Image.open(written / found["paths"][0]["strip"]) as strip:
        assert strip.size[0] > 3 * strip.size[1]  # four frames side by side


def test_more_proximity_changes_the_image_less(setup):
    from teachset.explain import Proxy, counterfactual_path

    data, generator, _ = setup
    proxy = Proxy(data, ("pixels",))
    z0 = generator.sample_latents(torch.tensor([0]), torch.Generator().manual_seed(1))[0]
    change = {}
    for weight in (0.0, 30.0):
        frames, _ = counterfactual_path(generator, proxy, z0, 0, 1, ExplainOptions(steps=30, lr=0.1, proximity_weight=weight,
                                                                                   extractors=("pixels",)))
        change[weight] = float((frames[-1] - frames[0]).abs().mean())
    assert change[30.0] < change[0.0]


def test_the_explain_command_and_its_errors(setup, capsys):
    data, _, folder = setup
    ts_folder = folder / "set"
    assert main(["explain", str(ts_folder), "--generator", str(folder / "generator"), "--extractor", "pixels",
                 "--extractors", "pixels", "--steps", "5", "--frames", "3"]) == 0
    assert "explanations" in capsys.readouterr().out and len(load_explanations(ts_folder)["paths"]) == 4
    assert main(["explain", str(ts_folder), "--generator", "teachset:elpv-64"]) == 2
    assert "px images but the dataset has" in capsys.readouterr().err


def test_the_report_shows_a_sets_strips(setup, tmp_path):
    data, generator, folder = setup
    ts = make_method("herding").make(data, per_class=1)
    ts.save(tmp_path / "set")
    explain(ts, generator, data, ExplainOptions(frames=3, steps=3, extractors=("pixels",)))
    assert main(["evaluate", str(tmp_path / "set"), "--extractor", "pixels", "--repeats", "1", "--out", str(tmp_path / "runs")]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert "counterfactual strips" in page and page.count('alt="strip"') == 2 and "0 &rarr; 1" in page


def test_the_proxy_fits_many_images_of_many_classes_in_little_memory():
    """All ten digit classes (1,797 images): the LC student's exact Newton solve would build a
    17,970^2 system (2.6 GB); the proxy's L-BFGS students need a few MB and still fit the data."""
    import resource

    from teachset.explain import Proxy

    data = TeachingData.load(load_dataset("digits", image_size=8), "pixels", progress=False)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    proxy = Proxy(data, ("pixels",))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 500_000  # KiB
    predicted = proxy.log_probabilities(data.dataset.tensor()).argmax(1).numpy()
    assert (predicted == data.dataset.labels).mean() > 0.95
