"""Figures people look at instead of reading numbers. Each function writes one PNG and returns its path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402


def save(fig, path: Path) -> Path:
    """Render ``fig`` and replace ``path`` atomically (a full disk leaves the old figure, and names the file)."""
    import io

    from seqae.checkpoint import CheckpointError, atomic_write

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        plt.close(fig)
        raise CheckpointError(f"{path.parent}: cannot create the folder for figures ({err.strerror or err})") from None
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format=path.suffix.lstrip(".") or "png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    atomic_write(path, buffer.getvalue())
    return path


def training_curves(records: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Loss (and evaluation loss) against step, one colour per stage; learning rate below."""
    train = [r for r in records if "loss" in r and r.get("loss") is not None]
    evals = [r for r in records if "eval_loss" in r]
    fig, (ax, ax_lr) = plt.subplots(2, 1, figsize=(7, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    stages = list(dict.fromkeys(r.get("stage", "main") for r in train))
    for stage in stages:
        points = [(r["step"], r["loss"]) for r in train if r.get("stage", "main") == stage]
        if points:
            steps, losses = zip(*points)
            ax.plot(steps, losses, label=f"train ({stage})" if len(stages) > 1 else "train")
    if evals:
        ax.plot([r["step"] for r in evals], [r["eval_loss"] for r in evals], "o-", ms=3, label="evaluation")
    chance = [r["chance_loss"] for r in records if isinstance(r.get("chance_loss"), (int, float))]
    if chance:  # a contrastive or language-model loss: where a uniform guess sits
        ax.axhline(chance[-1], color="gray", linestyle="--", linewidth=1, label=f"chance ({chance[-1]:.3g})")
    ax.set_ylabel("loss")
    if train and min(r["loss"] for r in train) > 0:
        ax.set_yscale("log")
        plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:.3g}")  # 4.8, not 4.8x10^0
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
    ax.legend()
    ax.grid(alpha=0.3)
    ax.set_title(title or "training curves")
    ax_lr.plot([r["step"] for r in train], [r.get("lr", np.nan) for r in train], color="gray")
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("step")
    ax_lr.grid(alpha=0.3)
    return save(fig, path)


def image_rows(rows: list[np.ndarray], labels: list[str], image_shape: tuple[int, ...], path: Path, title: str = "") -> Path:
    """A grid with one row per array of images (e.g. originals on top, reconstructions below)."""
    n = min(len(r) for r in rows)
    shape = tuple(image_shape) if len(image_shape) == 2 else (1, int(np.prod(image_shape)))
    fig, axes = plt.subplots(len(rows), n, figsize=(n * 0.8, len(rows) * 0.9), squeeze=False)
    for i, (row, label) in enumerate(zip(rows, labels)):
        for j in range(n):
            ax = axes[i, j]
            ax.imshow(np.asarray(row[j]).reshape(shape), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return save(fig, path)


def image_grid(images: np.ndarray, image_shape: tuple[int, ...], path: Path, columns: int = 10, title: str = "") -> Path:
    """Images in a grid (e.g. samples from a VAE)."""
    rows = int(np.ceil(len(images) / columns))
    return image_rows([images[r * columns : (r + 1) * columns] for r in range(rows)], [""] * rows, image_shape, path, title)


def projector(vectors: np.ndarray, path: Path, images: np.ndarray | None = None, **columns) -> Path:
    """Vectors ``(items, dim)`` and their metadata (``columns``: one string per item each, e.g. ``label=``,
    ``sentence=``; ``images``: one ``(H, W)`` image in [0, 1] per item, the projector's thumbnails) as ``path``
    (.npz), which training with ``train.tensorboard`` hands to TensorBoard's embedding projector."""
    import io

    from seqae.atomic import atomic_write

    buffer = io.BytesIO()
    arrays = {k: np.asarray([str(v) for v in c]) for k, c in columns.items()}
    if images is not None:
        arrays["images"] = np.clip(np.asarray(images, dtype=np.float32), 0.0, 1.0)
    np.savez(buffer, vectors=np.asarray(vectors, dtype=np.float32), **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, buffer.getvalue())
    return path


def code_map(codes: np.ndarray, labels: np.ndarray | None, path: Path, title: str = "", names: list[str] | None = None,
             projection: str = "pca") -> Path:
    """A 2-D scatter of codes coloured by label: the first two principal components if wider than 2, or
    with ``projection = "tsne"`` scikit-learn's t-SNE (perplexity 30, PCA initialisation, seed 0)."""
    points = codes
    axis_names = ("code 1", "code 2")
    if projection == "tsne" and codes.shape[1] >= 2 and len(codes) > 5:
        from sklearn.manifold import TSNE

        perplexity = min(30.0, (len(codes) - 1) / 3)
        points = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=0).fit_transform(codes.astype(np.float64))
        axis_names = ("t-SNE 1", "t-SNE 2")
    elif codes.shape[1] > 2:
        from sklearn.decomposition import PCA

        points = PCA(n_components=2, random_state=0).fit_transform(codes)
        axis_names = ("principal component 1", "principal component 2")
    elif codes.shape[1] == 1:
        points = np.concatenate([codes, np.zeros_like(codes)], axis=1)
    fig, ax = plt.subplots(figsize=(6, 5))
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=6)
    elif len(np.unique(labels)) <= 20:
        colours = plt.get_cmap("tab20" if len(np.unique(labels)) > 10 else "tab10")
        for i, label in enumerate(np.unique(labels)):
            chosen = labels == label
            name = names[int(label)] if names is not None else str(label)
            ax.scatter(points[chosen, 0], points[chosen, 1], s=6, color=colours(i), label=name)
        ax.legend(markerscale=2, fontsize=7, loc="best")
    else:
        scatter = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="viridis", s=6)
        fig.colorbar(scatter, ax=ax, label="label")
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    ax.set_title(title or "codes of the test split")
    return save(fig, path)


def code_usage(counts: np.ndarray, sample_codes: np.ndarray, sample_labels: np.ndarray | None, path: Path) -> Path:
    """How often each code is used (bars), with the codes of a few examples marked on top."""
    fig, ax = plt.subplots(figsize=(9, 3.8))
    k = len(counts)
    ax.bar(np.arange(k), counts, width=1.0, color="lightsteelblue", edgecolor="none", label="test split")
    used = int((counts > 0).sum())
    top = counts.max() if counts.max() > 0 else 1
    for i, example in enumerate(np.asarray(sample_codes).reshape(len(sample_codes), -1)):
        label = f"example {i}" if sample_labels is None else f"example {i} (label {sample_labels[i]})"
        ys = top * (1.04 + 0.05 * i) * np.ones(len(example))
        ax.scatter(example, ys, s=14, marker="v", label=label if i < 10 else None)
    ax.set_xlim(-1, k)
    ax.set_xlabel("code")
    ax.set_ylabel("count")
    ax.set_title(f"code usage: {used} of {k} codes used; markers: the codes of sample examples")
    ax.legend(fontsize=6, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save(fig, path)


def spectrograms(mels: list[np.ndarray], titles: list[str], path: Path, hop_seconds: float = 0.01) -> Path:
    """Log-mel spectrograms ``(n_mels, frames)`` stacked vertically, on one colour scale."""
    low = min(float(np.min(m)) for m in mels)
    high = max(float(np.max(m)) for m in mels)
    fig, axes = plt.subplots(len(mels), 1, figsize=(9, 2.3 * len(mels)), squeeze=False, constrained_layout=True)
    for ax, mel, title in zip(axes[:, 0], mels, titles):
        extent = (0, mel.shape[1] * hop_seconds, 0, mel.shape[0])
        image = ax.imshow(mel, origin="lower", aspect="auto", extent=extent, vmin=low, vmax=high, cmap="magma")
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("mel band")
    axes[-1, 0].set_xlabel("time (s)")
    fig.colorbar(image, ax=axes[:, 0].tolist(), shrink=0.8)
    return save(fig, path)


def mel_with_phones(mel: np.ndarray, phones, hop_seconds: float, path: Path, title: str = "") -> Path:
    """A log-mel spectrogram ``(n_mels, frames)`` with the phone boundaries and labels of its alignment."""
    fig, ax = plt.subplots(figsize=(11, 3.6))
    extent = (0, mel.shape[1] * hop_seconds, 0, mel.shape[0])
    ax.imshow(mel, origin="lower", aspect="auto", extent=extent, cmap="magma")
    for start, end, label in phones:
        ax.axvline(start, color="white", lw=0.6, alpha=0.7)
        ax.text((start + end) / 2, mel.shape[0] * 1.01, label, ha="center", va="bottom", fontsize=6, rotation=90)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel band")
    ax.set_title(title, fontsize=9, pad=22)
    return save(fig, path)


def bars(xs, ys, path: Path, xlabel: str = "", ylabel: str = "", title: str = "") -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(xs, ys, color="steelblue")
    ax.set_xticks(list(xs))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return save(fig, path)


def speaker_map(codes: np.ndarray, labels: np.ndarray, names: list[str], unseen: set[str], path: Path, title: str = "") -> Path:
    """Speaker codes ``(utterances, dim)`` on their first two principal components: training speakers as
    small dots (one colour each), held-out speakers as large outlined markers with their names."""
    from sklearn.decomposition import PCA

    points = PCA(n_components=2, random_state=0).fit_transform(codes) if codes.shape[1] > 2 else codes
    fig, ax = plt.subplots(figsize=(7, 6))
    colours = plt.get_cmap("viridis")
    for index, name in enumerate(names):
        chosen = labels == index
        if not chosen.any():
            continue
        if name in unseen:
            ax.scatter(points[chosen, 0], points[chosen, 1], s=40, marker="*", edgecolors="black", linewidths=0.6,
                       color=colours(index / max(1, len(names) - 1)), zorder=3)
            centre = points[chosen].mean(0)
            ax.annotate(name, centre, fontsize=6, xytext=(4, 4), textcoords="offset points")
        else:
            ax.scatter(points[chosen, 0], points[chosen, 1], s=6, color=colours(index / max(1, len(names) - 1)), alpha=0.7)
    ax.scatter([], [], s=6, color="grey", label="training speakers (one colour each)")
    ax.scatter([], [], s=40, marker="*", color="white", edgecolors="black", label="held-out speakers (one-shot)")
    ax.legend(fontsize=7, loc="best")
    ax.set_xlabel("principal component 1")
    ax.set_ylabel("principal component 2")
    ax.set_title(title or "speaker codes")
    return save(fig, path)


def text_table(rows: list[list[str]], headers: list[str], path: Path, title: str = "") -> Path:
    """A table of texts (wrapped), one row per example: e.g. texts beside their summaries."""
    import textwrap

    widths = [60, 40, 40][: len(headers)] + [40] * max(0, len(headers) - 3)
    cells = [["\n".join(textwrap.wrap(text, width)) or " " for text, width in zip(row, widths)] for row in rows]
    height = sum(max(c.count("\n") + 1 for c in row) for row in cells) * 0.22 + 1.0
    fig, ax = plt.subplots(figsize=(14, max(2.0, height)))
    ax.axis("off")
    table = ax.table(cellText=cells, colLabels=headers, loc="upper center", cellLoc="left",
                     colWidths=[w / sum(widths) for w in widths])
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    for (r, _), cell in table.get_celld().items():
        lines = cells[r - 1][0].count("\n") + 1 if r > 0 else 1
        lines = max(lines, *(c.count("\n") + 1 for c in cells[r - 1])) if r > 0 else 1
        cell.set_height(0.05 * lines * 10 / max(len(rows), 1) / max(height / 4, 1))
    ax.set_title(title)
    return save(fig, path)


def metric_panels(records: list[dict[str, Any]], panels: list[tuple[str, list[str]]], path: Path, title: str = "") -> Path:
    """One panel per ``(title, metric names)``: each metric of ``records`` (``metrics.jsonl``) against step
    where it was logged. A panel none of whose metrics were logged is left out."""
    present = [(name, [k for k in keys if any(k in r for r in records)]) for name, keys in panels]
    present = [(name, keys) for name, keys in present if keys] or [("nothing logged", [])]
    fig, axes = plt.subplots(len(present), 1, figsize=(7, 2.2 * len(present)), sharex=True, squeeze=False)
    for ax, (name, keys) in zip(axes[:, 0], present):
        for key in keys:
            points = [(r["step"], r[key]) for r in records if r.get(key) is not None]
            ax.plot(*zip(*points), label=key)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        if keys:
            ax.legend(fontsize=7)
    axes[-1, 0].set_xlabel("step")
    axes[0, 0].set_title(title)
    return save(fig, path)


def logged_metrics(records: list[dict[str, Any]], path: Path, title: str = "", most: int = 12) -> Path:
    """One small panel per metric of ``metrics.jsonl`` (the ``most`` first, in the order logged; training
    and, where logged, held-out values on the same panel: ``eval_X`` beside ``X``), linear axes."""
    skip = {"step", "stage", "lr", "samples_per_s", "loss", "eval_loss"}
    names = [k for r in records for k, v in r.items() if k not in skip and isinstance(v, (int, float)) and not isinstance(v, bool)]
    names = [n for n in dict.fromkeys(names) if not (n.startswith("eval_") and n[5:] in names)][:most]
    cols = min(3, max(len(names), 1))
    rows = max(1, -(-len(names) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.4 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        for key, label in ((name, "train"), (f"eval_{name}", "held out")):
            points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
            if points:
                ax.plot(*zip(*points), "o-" if label == "held out" else "-", ms=3, label=label)
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    if names and any(f"eval_{n}" in r for r in records for n in names):
        axes.flat[0].legend(fontsize=7)
    fig.suptitle(title or "logged metrics", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return save(fig, path)
