"""Checks `parareason run` / `record` make before anything is created or loaded: the
model exists, the output paths can be written and are not the input, every policy
(the run's and each row's own) builds with its parameters, and `n` within the cap.

Each failure exits 2 (one line, or click's usage text for PROMPTS and --policy), so a
typo never costs a model load and never leaves an empty results file or `.config.json`
behind.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click


class OptionError(click.ClickException):
    """A bad option value found before anything runs: one line, exit 2 (click's usage
    errors print the whole usage text first)."""

    exit_code = 2

    def __init__(self, message: str, option: str):
        super().__init__(f"{option}: {message}")


def check_model(model: str, backend: str) -> None:
    """Refuse an unknown --model before anything is created or loaded, for a backend that
    resolves it to local files (the registry's `resolves_local_model`). The cheap tests
    mirror models.resolve_model's (alias, HF directory, .gguf file); for a name they do
    not accept, resolve_model itself gives the message without loading anything."""
    from parareason.backends.registry import backend_spec

    if not backend_spec(backend).resolves_local_model:
        return
    from parareason.models import SHIPPED, ModelError, resolve_model

    path = Path(model).expanduser()
    if model in SHIPPED or (path.is_dir() and (path / "config.json").is_file()) \
            or (path.is_file() and path.suffix == ".gguf"):
        return
    try:
        resolve_model(model)
    except ModelError as e:
        raise OptionError(str(e), "--model") from None


def check_output(path: Path, option: str = "--out") -> None:
    """Refuse an output path that cannot be written (parent is a file, no permission),
    creating nothing."""
    from parareason.io.results import ResultFileError, check_writable

    try:
        check_writable(path)
    except ResultFileError as e:
        raise OptionError(str(e), option) from None


def same_file(a: Path | None, b: Path | None) -> bool:
    """True when two paths name one file (resolved, so ./x and x match; existing files by inode)."""
    if a is None or b is None:
        return False
    try:
        if a.exists() and b.exists():
            return a.samefile(b)
    except OSError:
        pass
    return a.expanduser().resolve() == b.expanduser().resolve()


def check_run_paths(prompts: Path, out: Path, trace: Path | None) -> None:
    """--out and --trace must be writable, differ from each other and from the input
    (a results file read as prompts, or prompts read as results, corrupts both)."""
    if same_file(out, prompts):
        raise OptionError(f"{out} is the input file; choose another --out", "--out")
    if trace is not None:
        if same_file(trace, out):
            raise OptionError(f"{trace} is also --out; events and results need files of their own", "--trace")
        if same_file(trace, prompts):
            raise OptionError(f"{trace} is the input file; choose another --trace", "--trace")
    check_output(out)
    if trace is not None:
        check_output(trace, "--trace")


def validate_policies(rows: list[Any], source: Path, policy: str, pargs: dict[str, Any], n: int) -> None:
    """Build the run's policy and each distinct row policy once now, so a bad name or
    parameter value fails before loading: the run's names --policy / --policy-arg, a
    row's own names its `file:line`."""
    from parareason.policies.build import policy_for_row
    from parareason.policies.registry import canonical_name
    from parareason.runtime.protocols import protocol_names

    try:
        canonical_name(policy)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--policy") from None
    try:
        policy_for_row(None, policy, pargs, n)
    except (ValueError, TypeError) as e:
        raise click.BadParameter(str(e), param_hint="--policy-arg") from None
    seen: set[tuple[str, int]] = {(policy, n)}
    for r in rows:
        proto = r.overrides.get("protocol")
        if proto is not None and proto not in protocol_names():
            raise click.BadParameter(f"{source}:{r.line}: unknown protocol {proto!r}; choose one of "
                                     f"{', '.join(protocol_names())}", param_hint="PROMPTS")
        key = (r.overrides.get("policy", policy), r.overrides.get("n", n))
        if key in seen:
            continue
        seen.add(key)
        try:
            policy_for_row(r.overrides.get("policy"), policy, pargs, key[1])
        except (ValueError, TypeError) as e:
            raise click.BadParameter(f"{source}:{r.line}: {e}", param_hint="PROMPTS") from None


def cap_width(rows: list[Any], n: int) -> int:
    """Cap `n` and rows' own `n` at the samples a request may run (its live-thread limit),
    saying so once; the capped run `n`. Above it the policies that launch every sample at
    the start (sc, ffs, bom, rpc) stopped at the cap anyway while the config recorded the
    n asked for; now what runs is what is recorded."""
    from parareason.runtime.limits import Limits

    cap = Limits().max_live_threads
    if cap is None:
        return n
    over = [r for r in rows if r.overrides.get("n", n) > cap]
    if over:
        widest = max(r.overrides.get("n", n) for r in over)
        click.echo(f"note: n={widest} is above the per-request cap of {cap} samples (live threads); "
                   f"running n={cap} for {len(over)} of {len(rows)} prompt(s), and recording it", err=True)
    for r in over:
        if "n" in r.overrides:
            r.overrides["n"] = cap
    return min(n, cap)
