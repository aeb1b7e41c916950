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
