"""Metrics over results, shared by `run`, `eval` and `replay`: one row per policy,
written as summary.json, summary.md and accuracy_vs_tokens.png."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from parareason.runtime.result import Result


@dataclass
class PolicySummary:
    policy: str
    prompts: int
    graded: int  # prompts with a reference answer
    correct: int
    accuracy: float | None  # correct / graded
    generated_tokens: int
    tokens_per_prompt: float
    errors: int
    wall_s: float
    tokens_vs_baseline: float | None = None  # generated tokens / the first policy's
    # mean usage.sequential_tokens: latency in decode steps (samples in waves add up)
    sequential_tokens_per_prompt: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _field(r: Result | Mapping[str, Any], name: str) -> Any:
    return r.get(name) if isinstance(r, Mapping) else getattr(r, name)


def summarize(policy: str, results: Iterable[Result | Mapping[str, Any]], wall_s: float) -> PolicySummary:
    rows = list(results)
    graded = [r for r in rows if _field(r, "correct") is not None]
    correct = sum(1 for r in graded if _field(r, "correct"))
    tokens = sum(int((_field(r, "usage") or {}).get("generated_tokens", 0)) for r in rows)
    sequential = sum(int((_field(r, "usage") or {}).get("sequential_tokens", 0)) for r in rows)
    return PolicySummary(
        policy=policy, prompts=len(rows), graded=len(graded), correct=correct,
        accuracy=correct / len(graded) if graded else None, generated_tokens=tokens,
        tokens_per_prompt=tokens / len(rows) if rows else 0.0,
        errors=sum(1 for r in rows if _field(r, "error")), wall_s=round(wall_s, 3),
        sequential_tokens_per_prompt=round(sequential / len(rows), 1) if rows else 0.0)


def with_baseline(summaries: Sequence[PolicySummary]) -> list[PolicySummary]:
    """Fill tokens_vs_baseline relative to the first policy."""
    if not summaries:
        return []
    base = summaries[0].generated_tokens
    for s in summaries:
        s.tokens_vs_baseline = round(s.generated_tokens / base, 4) if base else None
    return list(summaries)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A markdown table; every summary and benchmark table in the project is drawn by it."""
    head = "| " + " | ".join(columns) + " |\n" + "|" + "---|" * len(columns) + "\n"
    return head + "\n".join("| " + " | ".join(cells) + " |" for cells in rows) + "\n"


SUMMARY_COLUMNS = ("policy", "accuracy", "correct/graded", "generated tokens", "tokens/prompt", "tokens vs baseline",
                   "sequential tokens/prompt", "errors", "wall time (s)")


def summary_markdown(summaries: Sequence[PolicySummary]) -> str:
    """The per-policy table of summary.md."""
    rows = [[s.policy, _pct(s.accuracy), f"{s.correct}/{s.graded}", str(s.generated_tokens),
             f"{s.tokens_per_prompt:.1f}", "n/a" if s.tokens_vs_baseline is None else f"{s.tokens_vs_baseline:.2f}x",
             f"{s.sequential_tokens_per_prompt:.1f}", str(s.errors), f"{s.wall_s:.1f}"] for s in summaries]
    return markdown_table(SUMMARY_COLUMNS, rows)


def plot_accuracy_vs_tokens(summaries: Sequence[PolicySummary], path: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    points: dict[tuple[float, float], list[str]] = {}  # policies on the same spot share a label
    for s in summaries:
        y = 100 * s.accuracy if s.accuracy is not None else float("nan")
        points.setdefault((round(s.tokens_per_prompt, 1), round(y, 1)), []).append(s.policy)
    for (x, y), names in points.items():
        ax.scatter([x], [y], s=40)
        ax.annotate(", ".join(names), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=9)
    ax.margins(x=0.25)
    ax.set_xlabel("generated tokens per prompt")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_summary(out_dir: Path, summaries: Sequence[PolicySummary], meta: Mapping[str, Any]) -> dict[str, Path]:
    """summary.json (figures + how they were made), summary.md, accuracy_vs_tokens.png."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "summary.json", "md": out_dir / "summary.md",
             "png": out_dir / "accuracy_vs_tokens.png"}
    paths["json"].write_text(json.dumps({"meta": dict(meta), "policies": [s.to_dict() for s in summaries]},
                                        indent=2, default=str) + "\n")
    settings = ", ".join(f"{k}={v}" for k, v in meta.items())
    paths["md"].write_text(f"# Evaluation summary\n\n{settings}\n\n{summary_markdown(summaries)}")
    plot_accuracy_vs_tokens(summaries, paths["png"], title=str(meta.get("dataset", "")))
    return paths
