"""Metrics over results, shared by `run`, `eval`, `replay` and `bench policies`: one row
per policy, written as summary.json, summary.md and accuracy_vs_tokens.png.

Every policy is compared with the baseline (the first policy, self-consistency by
convention): its accuracy with a 95% bootstrap CI, the paired bootstrap CI of its
accuracy difference to the baseline on the questions both graded, and its token and
wall-time ratios. The SC@k curve (io/statistics.py) places it against self-consistency
at the same token cost. Intervals and curve: parareason/io/statistics.py.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from parareason.io.statistics import (
    ScPoint, accuracy_ci, field_of, method_note, paired_difference_ci, sc_accuracy_at,
)
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
    accuracy_ci: list[float] | None = None  # 95% bootstrap CI [low, high]; None under 2 graded prompts
    wall_vs_baseline: float | None = None  # wall seconds / the first policy's
    # accuracy minus the baseline's on the prompts both graded, and its paired 95% bootstrap CI
    accuracy_vs_baseline: float | None = None
    accuracy_vs_baseline_ci: list[float] | None = None
    paired_prompts: int = 0
    # per graded prompt id: correct or not (what the paired comparison resamples; not written)
    outcomes: dict[str, bool] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        del d["outcomes"]
        return d


def _interval(ci: tuple[float, float] | None) -> list[float] | None:
    return None if ci is None else [round(ci[0], 4), round(ci[1], 4)]


def summarize(policy: str, results: Iterable[Result | Mapping[str, Any]], wall_s: float) -> PolicySummary:
    rows = list(results)
    graded = [r for r in rows if field_of(r, "correct") is not None]
    correct = sum(1 for r in graded if field_of(r, "correct"))
    tokens = sum(int((field_of(r, "usage") or {}).get("generated_tokens", 0)) for r in rows)
    sequential = sum(int((field_of(r, "usage") or {}).get("sequential_tokens", 0)) for r in rows)
    outcomes = {str(field_of(r, "id")): bool(field_of(r, "correct")) for r in graded}
    return PolicySummary(
        policy=policy, prompts=len(rows), graded=len(graded), correct=correct,
        accuracy=correct / len(graded) if graded else None, generated_tokens=tokens,
        tokens_per_prompt=tokens / len(rows) if rows else 0.0,
        errors=sum(1 for r in rows if field_of(r, "error")), wall_s=round(wall_s, 3),
        sequential_tokens_per_prompt=round(sequential / len(rows), 1) if rows else 0.0,
        accuracy_ci=_interval(accuracy_ci(list(outcomes.values()))), outcomes=outcomes)


def with_baseline(summaries: Sequence[PolicySummary]) -> list[PolicySummary]:
    """Fill the comparisons with the first policy: token and wall ratios, and the paired
    accuracy difference (with its CI) on the prompts both graded."""
    if not summaries:
        return []
    base = summaries[0]
    for s in summaries:
        s.tokens_vs_baseline = round(s.generated_tokens / base.generated_tokens, 4) if base.generated_tokens else None
        s.wall_vs_baseline = round(s.wall_s / base.wall_s, 4) if base.wall_s else None
        shared = [i for i in s.outcomes if i in base.outcomes]
        s.paired_prompts = len(shared)
        if shared:
            diff, ci = paired_difference_ci([s.outcomes[i] for i in shared], [base.outcomes[i] for i in shared])
            s.accuracy_vs_baseline, s.accuracy_vs_baseline_ci = round(diff, 4), _interval(ci)
    return list(summaries)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _ratio(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}x"


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A markdown table; every summary and benchmark table in the project is drawn by it."""
    head = "| " + " | ".join(columns) + " |\n" + "|" + "---|" * len(columns) + "\n"
    return head + "".join("| " + " | ".join(cells) + " |\n" for cells in rows)


def ci_cell(ci: Sequence[float] | None) -> str:
    """A 95% CI of an accuracy, in percent."""
    return "n/a" if ci is None else f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]%"


def difference_cell(s: PolicySummary, baseline: PolicySummary) -> str:
    """The accuracy difference to the baseline in points, with its paired 95% CI."""
    if s is baseline:
        return "baseline"
    if s.accuracy_vs_baseline is None:
        return "n/a"
    ci = s.accuracy_vs_baseline_ci
    cell = f"{100 * s.accuracy_vs_baseline:+.1f} pts"
    cell += f" [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]" if ci is not None else ""
    return cell + ("" if s.paired_prompts == baseline.graded == s.graded else f" on {s.paired_prompts}")


COMPARISON_COLUMNS = ("accuracy 95% CI", "vs baseline: accuracy [95% paired CI]", "wall vs baseline")


def comparison_cells(s: PolicySummary, baseline: PolicySummary) -> list[str]:
    """The cells under COMPARISON_COLUMNS (the printed table and summary.md share them)."""
    return [ci_cell(s.accuracy_ci), difference_cell(s, baseline), _ratio(s.wall_vs_baseline)]


SUMMARY_COLUMNS = ("policy", "accuracy", "correct/graded", "generated tokens", "tokens/prompt", "tokens vs baseline",
                   "sequential tokens/prompt", "errors", "wall time (s)", *COMPARISON_COLUMNS)


def summary_markdown(summaries: Sequence[PolicySummary]) -> str:
    """The per-policy table of summary.md."""
    rows = [[s.policy, _pct(s.accuracy), f"{s.correct}/{s.graded}", str(s.generated_tokens),
             f"{s.tokens_per_prompt:.1f}", _ratio(s.tokens_vs_baseline), f"{s.sequential_tokens_per_prompt:.1f}",
             str(s.errors), f"{s.wall_s:.1f}", *comparison_cells(s, summaries[0])] for s in summaries]
    return markdown_table(SUMMARY_COLUMNS, rows)


def sc_curve_markdown(curve: Sequence[ScPoint], policy: str) -> str:
    """The SC@k table: majority vote over k of `policy`'s samples."""
    if not curve:
        return ""
    rows = [[str(p.k), _pct(p.accuracy), f"{p.tokens_per_prompt:.1f}"] for p in curve]
    return (f"SC@k from {policy}'s own samples ({curve[0].questions} graded prompts; majority vote over "
            "k of them, averaged over k-subsets; ties split evenly):\n\n"
            + markdown_table(("k", "accuracy", "tokens/prompt"), rows))


def equal_cost_markdown(summaries: Sequence[PolicySummary], sc_at: Mapping[str, float | None]) -> str:
    """Each policy against self-consistency at its own token cost (`sc_at`: policy -> the
    SC@k curve's accuracy at that policy's tokens, from `sc_accuracy_at`)."""
    rows = []
    for s in summaries:
        sc = sc_at[s.policy]
        gap = "n/a" if sc is None or s.accuracy is None else f"{100 * (s.accuracy - sc):+.1f} pts"
        rows.append([s.policy, f"{s.tokens_per_prompt:.1f}", _pct(s.accuracy),
                     "outside the curve" if sc is None else _pct(sc), gap])
    return ("Each policy against SC at the same token cost (the SC@k curve interpolated linearly in log "
            "tokens; no interval):\n\n"
            + markdown_table(("policy", "tokens/prompt", "accuracy", "SC at these tokens", "policy - SC"), rows))


def write_summary(out_dir: Path, summaries: Sequence[PolicySummary], meta: Mapping[str, Any],
                  curve: Sequence[ScPoint] = (), curve_policy: str | None = None) -> dict[str, Path]:
    """summary.json (figures + how they were made), summary.md, accuracy_vs_tokens.png.
    `curve` is the SC@k curve drawn from `curve_policy`'s samples (none: not drawn)."""
    from parareason.io.summary_plot import plot_accuracy_vs_tokens

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "summary.json", "md": out_dir / "summary.md",
             "png": out_dir / "accuracy_vs_tokens.png"}
    sc_at = {s.policy: sc_accuracy_at(curve, s.tokens_per_prompt) for s in summaries}
    sc_at_k = {"policy": curve_policy, "points": [p.to_dict() for p in curve], "at_policy_tokens": sc_at} if curve else None
    paths["json"].write_text(json.dumps({"meta": dict(meta), "statistics": method_note(),
                                         "policies": [s.to_dict() for s in summaries], "sc_at_k": sc_at_k},
                                        indent=2, default=str) + "\n")
    settings = ", ".join(f"{k}={v}" for k, v in meta.items())
    curve_md = (f"\n{sc_curve_markdown(curve, curve_policy or '')}\n{equal_cost_markdown(summaries, sc_at)}"
                if curve else "")
    paths["md"].write_text(f"# Evaluation summary\n\n{settings}\n\n{summary_markdown(summaries)}{curve_md}")
    plot_accuracy_vs_tokens(summaries, paths["png"], title=str(meta.get("dataset", "")), curve=curve,
                            curve_policy=curve_policy)
    return paths
