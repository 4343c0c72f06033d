"""PR-curve plots of one or several scored systems (matplotlib, imported lazily)."""

from __future__ import annotations

import os
from collections.abc import Mapping


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("PR-curve plots need matplotlib: `pip install molora-adapters[plot]`.") from e
    return plt


def plot_pr_curves(results: Mapping[str, dict], path: str | os.PathLike, *, title: str | None = None) -> str:
    """Draw the PR curves of several results (as returned by :func:`~.api.score`) on one plot.

    Results without a ``curve`` (BenchIE) are drawn as a single point.

    Args:
        results (`Mapping[str, dict]`): label -> score result.
        path (`str` or `os.PathLike`): PNG file to write.
        title (`str`, *optional*): plot title.

    Returns:
        `str`: the path written.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    try:
        for label, res in results.items():
            auc = res.get("auc")
            name = f"{label} (F1 {res['f1']:.3f}" + (f", AUC {auc:.3f})" if auc is not None else ")")
            curve = res.get("curve") or {}
            if curve.get("recall"):
                # points in threshold order, so ties in recall keep their order along the curve
                ax.plot(curve["recall"], curve["precision"], label=name)
            else:
                ax.scatter([res["recall"]], [res["precision"]], label=name)
        ax.set_xlabel("Recall")
        ax.set_ylabel("Precision")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
        if title:
            ax.set_title(title)
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, ".tmp-" + os.path.basename(path))
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
    return os.fspath(path)
