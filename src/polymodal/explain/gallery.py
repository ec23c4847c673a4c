"""A gallery figure: each image beside its expert mask and one heat map per column."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from polymodal.io import atomic_path


def draw_gallery(images: np.ndarray, columns: dict[str, np.ndarray], path: str | Path, *,
                 masks: np.ndarray | None = None, row_titles: list[str] | None = None, dpi: int = 60) -> Path:
    """Write a PNG grid.

    Args:
        images: (N, S, S, 3) uint8 RGB images (resized like the maps).
        columns: column title -> (N, S, S) heat maps in [0, 1], drawn over the image.
        path: output PNG (written atomically).
        masks: (N, S, S) bool expert masks, drawn as a column after the image and as a contour on maps.
        row_titles: one label per row (diagnosis, id).
        dpi: resolution; low by default so committed galleries stay small.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(images)
    titles = ["image"] + (["expert mask"] if masks is not None else []) + list(columns)
    fig, axes = plt.subplots(n, len(titles), figsize=(1.9 * len(titles), 1.9 * n), squeeze=False)
    for i in range(n):
        panels: list[tuple[str, np.ndarray | None]] = [("image", None)]
        if masks is not None:
            panels.append(("mask", masks[i]))
        panels += [(t, columns[t][i]) for t in columns]
        for j, (kind, data) in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(images[i])
            if kind == "mask" and data is not None:
                ax.imshow(data, cmap="gray", alpha=0.6)
            elif data is not None:
                ax.imshow(data, cmap="jet", alpha=0.5, vmin=0, vmax=1)
                if masks is not None:
                    ax.contour(masks[i], levels=[0.5], colors="white", linewidths=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(titles[j], fontsize=7)
        if row_titles:
            axes[i, 0].set_ylabel(row_titles[i], fontsize=7)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return path
