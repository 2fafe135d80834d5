"""A wrong array, drawn: yours | expected | difference, as heatmaps side by side, with the
numbers in the cells when they fit and every mismatching cell outlined.

An array of more than two axes is cut down to the matrix that holds the first mismatch (its
leading indices fixed); a matrix too big to read is cropped around it.
"""

from pathlib import Path

import numpy as np

MAX_ROWS, MAX_COLS = 16, 24  # beyond this a picture is cropped around the first mismatch
NUMBERS_UP_TO = 12 * 16  # cells, past which the numbers are left out of the cells


def matrix_at(array: np.ndarray, index: tuple) -> tuple[np.ndarray, str]:
    """The 2-D slice of `array` holding `index`, and how it was cut ('[1, 3, :, :]')."""
    if array.ndim == 0:
        return array.reshape(1, 1), ""
    if array.ndim == 1:
        return array.reshape(1, -1), "[:] as one row"
    lead = index[:-2]
    text = "[" + ", ".join([*map(str, lead), ":", ":"]) + "]" if lead else ""
    return array[lead], text


def window(length: int, center: int, size: int) -> slice:
    start = min(max(0, center - size // 2), max(0, length - size))
    return slice(start, min(length, start + size))


def draw(path: Path, title: str, picture: dict) -> Path:
    """Write the picture of one mismatch (verdict.compare's `picture`) to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    index = picture["index"]
    got, cut = matrix_at(picture["got"], index)
    expected, _ = matrix_at(picture["expected"], index)
    bad, _ = matrix_at(picture["bad"], index)
    row, col = (index[-2], index[-1]) if len(index) >= 2 else (0, index[-1] if index else 0)
    rows, cols = window(got.shape[0], row, MAX_ROWS), window(got.shape[1], col, MAX_COLS)
    got, expected, bad = got[rows, cols], expected[rows, cols], bad[rows, cols]
    difference = got - expected
    cropped = got.shape != matrix_at(picture["got"], index)[0].shape

    limit = float(np.nanmax(np.abs(np.concatenate([got[np.isfinite(got)], expected[np.isfinite(expected)], [0.0]]))))
    limit = limit or 1.0
    spread = float(np.nanmax(np.abs(difference[np.isfinite(difference)]), initial=0.0)) or 1.0
    width = min(18.0, 3 + 3 * (1 + got.shape[1] * 0.45))
    fig, axes = plt.subplots(1, 3, figsize=(width, 1.6 + 0.42 * got.shape[0]), constrained_layout=True)
    panels = [("yours", got, "RdBu_r", limit), ("expected", expected, "RdBu_r", limit),
              ("difference (yours - expected)", difference, "PuOr_r", spread)]
    for ax, (name, values, cmap, scale) in zip(axes, panels):
        shown = np.where(np.isfinite(values), values, 0.0)
        ax.imshow(shown, cmap=cmap, vmin=-scale, vmax=scale, aspect="auto")
        ax.set_title(name, fontsize=10)
        ax.set_xticks(range(values.shape[1]), [str(c) for c in range(cols.start, cols.stop)], fontsize=7)
        ax.set_yticks(range(values.shape[0]), [str(r) for r in range(rows.start, rows.stop)], fontsize=7)
        if values.size <= NUMBERS_UP_TO:
            for (r, c), v in np.ndenumerate(values):
                dark = np.isfinite(v) and abs(v) > 0.55 * scale  # a saturated cell: white text on it
                ax.text(c, r, "nan" if np.isnan(v) else f"{v:.3g}", ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")
        for r, c in np.argwhere(bad):
            ax.add_patch(Rectangle((c - 0.45, r - 0.45), 0.9, 0.9, fill=False, edgecolor="#ffb000", linewidth=2.0))
    where = f"{picture['name']}{cut}" + (" (cropped around the first mismatch)" if cropped else "")
    fig.suptitle(f"{title}\n{where}: cells outlined in orange differ by more than the tolerance", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
