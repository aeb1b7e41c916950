"""accuracy_vs_tokens.png: each policy as a point with its 95% CI bar, against the SC@k
curve drawn from the baseline's own samples (self-consistency at the same token cost)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from parareason.io.statistics import ScPoint
    from parareason.io.summary import PolicySummary


def plot_accuracy_vs_tokens(summaries: Sequence["PolicySummary"], path: Path, title: str = "",
                            curve: Sequence["ScPoint"] = (), curve_policy: str | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    if curve:
        xs, ys = [p.tokens_per_prompt for p in curve], [100 * p.accuracy for p in curve]
        ax.plot(xs, ys, "-o", color="0.55", ms=4, lw=1.2, zorder=1,
                label=f"SC@k from {curve_policy}'s samples" if curve_policy else "SC@k")
        for p, x, y in zip(curve, xs, ys):
            ax.annotate(f"k={p.k}", (x, y), textcoords="offset points", xytext=(-4, -12), fontsize=7, color="0.4")
    points: dict[tuple[float, float], list["PolicySummary"]] = {}  # policies on the same spot share a label
    for s in summaries:
        y = 100 * s.accuracy if s.accuracy is not None else float("nan")
        points.setdefault((round(s.tokens_per_prompt, 1), round(y, 1)), []).append(s)
    for (x, y), group in points.items():
        ci = group[0].accuracy_ci
        yerr = [[y - 100 * ci[0]], [100 * ci[1] - y]] if ci is not None else None
        ax.errorbar([x], [y], yerr=yerr, fmt="o", ms=6, capsize=4, zorder=2)
        ax.annotate(", ".join(s.policy for s in group), (x, y), textcoords="offset points", xytext=(6, 4),
                    fontsize=9)
    ax.margins(x=0.25)
    ax.set_xlabel("generated tokens per prompt")
    ax.set_ylabel("accuracy (%), bars: 95% bootstrap CI")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    if curve:
        ax.legend(loc="lower right", fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
