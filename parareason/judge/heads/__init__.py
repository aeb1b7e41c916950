"""Judge heads shipped with the package, one per shipped model (`<alias>.pt`).

DeepPrune's default judge (`judge="auto"`) is the head trained on recorded traces of
the model the request runs on, where this folder has one, else the MiniLM embedding
judge. Each head's training command, data and held-out AUROC are in README.md here.
"""
from __future__ import annotations

from pathlib import Path

HEADS_DIR = Path(__file__).parent


def shipped_head(model: str | None) -> Path | None:
    """The shipped head for `model` (a registry alias), or None."""
    if not model or "/" in model or model.startswith("."):
        return None
    path = HEADS_DIR / f"{model}.pt"
    return path if path.is_file() else None


def resolve_auto(kind: str, head: str | None, model: str | None) -> tuple[str, str | None]:
    """`auto` -> ("trained", the shipped head) where `model` has one (or `head` is given),
    else ("embedding", None); any other kind is returned as it is."""
    if kind != "auto":
        return kind, head
    head = head or (str(p) if (p := shipped_head(model)) else None)
    return ("trained" if head else "embedding"), head
