"""Released checkpoints of the trained dialects: a model that names one defaults to `trained`.

The names come from the reference repositories:

* APR, github.com/Parallel-Reasoning/APR @ 557792831087b701e0d41912eaf785c8d73e6f69:
  `README.md` (`Parallel-Reasoning/llama-apr_cond10_grpo`), `tinyrl/README.md` (the RL
  checkpoints `apr_grpo`, `apr_cond10_grpo`) and `tinyrl/configs/apr.yaml`,
  `apr_cond10.yaml` (the SFT checkpoints they start from). The SoS+ checkpoints
  (`llama-sosp`, `sosp_grpo`) are the serialized-search baseline, which never calls sub
  searches: they are not APR checkpoints.
* ParaThinker, github.com/MobileLLM/ParaThinker @ 6d98fae21e824a61971c101d0496ce63d187c51e:
  `README.md` (`Leslie04/ParaThinker-1.5B`; `Leslie04/ParaThinker-7B`, announced).
* ThreadWeaver, github.com/facebookresearch/threadweaver
  @ 26622324ad0fcad9be53a692d0a8f214a8fa5ee8, releases no checkpoint. Its SFT
  reproduction (`README.md`, `threadweaver_sft/train.sh`) writes `ckpts/Q3-8B-131072-SFT`
  or `ckpts/Q3-8B-131072-SFT-<date>_<time>`, matched here; its sequential baseline
  `Q3-8B-131072-AR-SFT` is not.

A model matches when one component of its path equals a checkpoint's name, ignoring case:
a hub id (`Leslie04/ParaThinker-1.5B`), a local copy (`/models/ParaThinker-1.5B`, or a
trainer's `.../checkpoint-500` under it) or a hub cache folder
(`models--Leslie04--ParaThinker-1.5B/snapshots/<hash>`).
"""
from __future__ import annotations

import re

# checkpoint name (lower case) -> the protocol whose trained dialect it speaks
RELEASED: dict[str, str] = {
    "llama-apr_cond10_grpo": "apr",
    "apr_grpo": "apr",
    "apr_cond10_grpo": "apr",
    "llama-apr-beam10_subbeam15": "apr",
    "llama-apr-beam10_subbeam15_num_subcall_cond": "apr",
    "parathinker-1.5b": "parathinker",
    "parathinker-7b": "parathinker",
}
# output folders of a reference training script (no released checkpoint)
TRAINED_OUTPUTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"q3-8b-131072-sft(-\d{8}_\d{6})?"), "threadweaver"),
)


def checkpoint_protocol(model: str | None) -> str | None:
    """The protocol whose released checkpoint `model` names, or None."""
    for part in re.split(r"[/\\]", model or ""):
        part = part.lower()
        if part.startswith("models--"):  # hub cache: models--{org}--{name}
            part = part.rsplit("--", 1)[-1]
        if part in RELEASED:
            return RELEASED[part]
        for pattern, protocol in TRAINED_OUTPUTS:
            if pattern.fullmatch(part):
                return protocol
    return None


def default_dialect(protocol: str, model: str | None) -> str:
    """`trained` when `model` is a released checkpoint of `protocol`, else `prompted`."""
    return "trained" if checkpoint_protocol(model) == protocol.lower() else "prompted"
