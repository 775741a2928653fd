"""Parts the array families share (autoencoder, vae, and vqvae on images): data preparation, inputs from
files, codes, anomaly scores, and the reconstruction and code-map figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from seqae.config import ConfigError, Recipe
from seqae.datasets.arrays import ArraySource, build_splits, read_input
from seqae.datasets.base import fingerprint
from seqae.evaluation.arrays import corrupt_like
from seqae.families.base import Inferred, Prepared
from seqae.runtime import model_device


def prepare_arrays(recipe: Recipe) -> Prepared:
    train, test, data = build_splits(recipe.data)
    width = data.x.shape[1]
    classes = getattr(recipe.model, "num_classes", 0)
    if classes:
        if data.y is None:
            raise ConfigError(f"{recipe.source}: model.num_classes = {classes} needs labelled data (data.labels, or 'y' in the .npz)")
        if data.y.min() < 0 or data.y.max() >= classes:
            raise ConfigError(
                f"{recipe.source}: labels range over {int(data.y.min())}..{int(data.y.max())}, "
                f"but model.num_classes = {classes} allows 0..{classes - 1}"
            )
    if recipe.model.input_dim not in (0, width):
        raise ConfigError(
            f"{recipe.source}: model.input_dim = {recipe.model.input_dim} but the data has {width} features"
        )
    labels = data.y if data.y is not None else "no labels"
    inferred = Inferred(input_dim=width, image_shape=list(data.image_shape), scale=data.scale)
    return Prepared(train, test, data, inferred, fingerprint=fingerprint(data.x, labels), data_name=str(recipe.data.source))


def prepare_images(recipe: Recipe) -> Prepared:
    prepared = prepare_arrays(recipe)
    shape = prepared.inferred.image_shape
    if len(shape) != 2:
        raise ConfigError(f"{recipe.source}: the {recipe.family} family needs images; the data's example shape is {shape}")
    return prepared


def array_inputs(model: nn.Module, recipe: Recipe, path: Path) -> torch.Tensor:
    from seqae.datasets.arrays import ArrayDataConfig

    if not isinstance(recipe.data, ArrayDataConfig):
        raise ConfigError(f"{path}: this command takes array input; the model was trained on {type(recipe.data).__name__}")
    x = read_input(path, recipe.data.scale, recipe.model.input_dim)
    return torch.from_numpy(x).to(model_device(model))


@torch.no_grad()
def array_codes(model: nn.Module, recipe: Recipe, path: Path) -> np.ndarray:
    """Codes ``(examples, code_dim)``: the code layer (autoencoder) or the posterior mean (vae)."""
    model.eval()
    x = array_inputs(model, recipe, path)
    codes = model.encode(x)
    if isinstance(codes, tuple):
        codes = codes[0]
    return codes.cpu().numpy()


@torch.no_grad()
def array_items(model: nn.Module, recipe: Recipe, path: Path, code_of=None) -> tuple[list[str], np.ndarray]:
    """Search items of an array file: each row's code (``code_of`` as for :func:`probe_baselines`), named
    by its row number (from 0)."""
    model.eval()
    x = array_inputs(model, recipe, path).cpu().numpy()
    vectors = encode_all(model, x, None if code_of is None else lambda batch: code_of(model, batch))
    return [str(i) for i in range(len(x))], vectors


@torch.no_grad()
def array_scores(model: nn.Module, recipe: Recipe, path: Path) -> np.ndarray:
    """Anomaly scores ``(examples,)``: the per-example reconstruction error."""
    model.eval()
    return model.reconstruction_error(array_inputs(model, recipe, path)).cpu().numpy()


def splits(prepared: Prepared) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None]:
    """``(train_x, train_y, test_x, test_y)`` of prepared arrays (labels ``None`` where there are none)."""
    train, test = prepared.train, prepared.test
    assert isinstance(train, ArraySource) and isinstance(test, ArraySource)
    return (train.x.numpy(), None if train.y is None else train.y.numpy(),
            test.x.numpy(), None if test.y is None else test.y.numpy())


def figure_picks(test_y: np.ndarray | None, n: int) -> list[int]:
    """Ten test examples: one of each label first where labels exist, so a figure shows the whole range."""
    if test_y is None:
        return list(range(min(10, n)))
    picks = [int(np.flatnonzero(test_y == c)[0]) for c in np.unique(test_y)][:10]
    return picks + [i for i in range(n) if i not in picks][: 10 - len(picks)]


@torch.no_grad()
def reconstruction_figure(model: nn.Module, recipe: Recipe, test_x: np.ndarray, picks: list[int], out_dir: Path) -> Path:
    """Originals and reconstructions of the picked test examples (with the noisy inputs of a denoising model)."""
    from seqae import plots

    model.eval()
    device = model_device(model)
    x = torch.from_numpy(test_x[picks])
    rows, labels = [x.numpy()], ["original"]
    if getattr(model.config, "noise", "none") != "none" and model.config.noise_level > 0:
        noisy = corrupt_like(model, x, recipe.eval.noise_seed)
        rows += [noisy.clamp(0, 1).numpy(), model.reconstruct(noisy.to(device)).cpu().numpy()]
        labels += ["noisy", "denoised"]
    else:
        rows.append(model.reconstruct(x.to(device)).cpu().numpy())
        labels.append("reconstruction")
    return plots.image_rows(rows, labels, tuple(recipe.data.image_shape), out_dir / "reconstructions.png", "test split")


def thumbnails(recipe: Recipe, x: np.ndarray) -> np.ndarray | None:
    """The inputs as ``(N, H, W)`` images for the projector, when they are 2-D images (else None)."""
    shape = tuple(recipe.data.image_shape)
    return x.reshape(len(x), *shape) if len(shape) == 2 and int(np.prod(shape)) == x.shape[1] else None


@torch.no_grad()
def code_figures(model: nn.Module, recipe: Recipe, prepared: Prepared, out_dir: Path) -> list[Path]:
    """The reconstructions and a map of the test split's codes (autoencoder; the posterior mean for a VAE)."""
    from seqae import plots

    _, _, test_x, test_y = splits(prepared)
    paths = [reconstruction_figure(model, recipe, test_x, figure_picks(test_y, len(test_x)), out_dir)]
    codes = model.encode(torch.from_numpy(test_x).to(model_device(model)))
    codes = (codes[0] if isinstance(codes, tuple) else codes).cpu().numpy()
    paths.append(plots.code_map(codes, test_y, out_dir / "code_map.png"))
    paths.append(plots.projector(codes, out_dir / "codes.npz", thumbnails(recipe, test_x), **({} if test_y is None else {"label": test_y})))
    if test_y is not None:
        paths.append(plots.code_map(codes, test_y, out_dir / "tsne_map.png", title="codes of the test split (t-SNE)", projection="tsne"))
    return paths


@torch.no_grad()
def encode_all(net: nn.Module, x: np.ndarray, encode=None, batch: int = 1024) -> np.ndarray:
    """``encode`` (default ``net.encode``; a tuple's first item, the VAE's mean) of every row of ``x``."""
    device = model_device(net)
    encode = encode or net.encode

    def first(out):
        return out[0] if isinstance(out, tuple) else out

    return torch.cat([first(encode(torch.from_numpy(x[i : i + batch]).to(device))) for i in range(0, len(x), batch)]).cpu().numpy()


def probe_baselines(model: nn.Module, train_x: np.ndarray, test_x: np.ndarray, name: str, seed: int, width: int,
                    code_of=None) -> dict:
    """Feature sets for :func:`~seqae.evaluation.few_labels.few_label_probes`: the model's codes (as ``name``),
    the same network untrained (seeded), PCA with ``width`` components, and the pixels. ``code_of(net, x)``
    gives a network's codes ``(batch, width)`` (default: ``net.encode``, a tuple's first item)."""
    from sklearn.decomposition import PCA

    torch.manual_seed(seed)
    untrained = type(model)(model.config).to(model_device(model)).eval()
    pca = PCA(n_components=min(width, *train_x.shape), random_state=seed).fit(train_x)

    def codes(net: nn.Module, x: np.ndarray) -> np.ndarray:
        return encode_all(net, x, None if code_of is None else lambda batch: code_of(net, batch))

    return {name: (codes(model, train_x), codes(model, test_x)),
            "untrained": (codes(untrained, train_x), codes(untrained, test_x)),
            "pca": (pca.transform(train_x), pca.transform(test_x)),
            "pixels": (train_x, test_x)}


def code_width(model: nn.Module, x: np.ndarray, code_of=None) -> int:
    return encode_all(model, x[:1], None if code_of is None else lambda batch: code_of(model, batch)).shape[1]


def few_label_result(model: nn.Module, recipe: Recipe, prepared: Prepared, name: str, code_of=None) -> dict:
    """Few-label linear and k-NN probes and retrieval by label (:func:`retrieval_by_label`) on the model's
    codes beside its baselines (labelled data only); ``code_of`` as for :func:`probe_baselines`."""
    from seqae.evaluation.few_labels import few_label_probes

    train_x, train_y, test_x, test_y = splits(prepared)
    if train_y is None or test_y is None:
        return {}
    model.eval()
    config = recipe.eval
    width = code_width(model, test_x, code_of)
    features = probe_baselines(model, train_x, test_x, name, config.probe_seed, width, code_of)
    result = few_label_probes(features, train_y, test_y, tuple(config.labels_per_class), config.draws, config.probe_seed)
    return result | retrieval_by_label(features, train_y, test_y, config.retrieval_queries)


def retrieval_by_label(features: dict, train_y: np.ndarray, test_y: np.ndarray, max_queries: int = 1000) -> dict[str, float]:
    """Test inputs as queries against the training split by cosine similarity of each feature set:
    ``{name}_precision_at_10`` and ``{name}_map`` (mean average precision, same label = relevant). At most
    ``max_queries`` queries, evenly spaced through the test split (0: every test input)."""
    from seqae.retrieval import label_retrieval

    picks = np.arange(len(test_y))
    if max_queries and len(picks) > max_queries:
        picks = picks[np.linspace(0, len(picks) - 1, max_queries).astype(int)]
    result: dict[str, float] = {"retrieval_queries": len(picks)}
    for name, (train_f, test_f) in features.items():
        for key, value in label_retrieval(test_f[picks], test_y[picks], train_f, train_y, k=10).items():
            result[f"{name}_{key}"] = value
    return result


def discriminator_result(model: nn.Module, recipe: Recipe, prepared: Prepared, name: str, seed: int, code_of=None,
                         **options) -> dict:
    """The discriminator evaluation (:mod:`seqae.evaluation.discriminator`) of the model's codes beside the
    same network untrained and PCA with as many components, when asked for (``--discriminator`` or
    ``eval.discriminator``); ``code_of`` as for :func:`probe_baselines`."""
    from seqae.evaluation.discriminator import discriminator_evaluation

    if not (options.get("discriminator") or getattr(recipe.eval, "discriminator", False)):
        return {}
    train_x, _, test_x, _ = splits(prepared)
    model.eval()
    features = probe_baselines(model, train_x, test_x, name, seed, code_width(model, test_x, code_of), code_of)
    features.pop("pixels")  # the input itself: a perfect code by construction
    return discriminator_evaluation(features, train_x, test_x, seed)

