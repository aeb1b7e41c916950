"""Click options shared by run / eval / record, and the `--config FILE` loader.

A config file (TOML or JSON) holds the same keys as the long options (dashes or
underscores); it fills in defaults, so flags given on the command line win.
`policy_args` and `protocol_args` may be a table ({k = v}) or a list of "k=v" strings.
"""
from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any, Callable

import click

from parareason.backends.registry import BACKENDS, DEFAULT_BACKEND, backend_names
from parareason.models import DEFAULT_MODEL
from parareason.policies.registry import POLICY_NAMES
from parareason.runtime.protocols import protocol_names

PUBLIC_BACKENDS = backend_names(public_only=True, cli_only=True)
# Command-line backends: the registry's --backend choices; the hidden ones (the scripted
# test double) are accepted but never shown in help.
CLI_BACKENDS = backend_names(cli_only=True)


def protocol_option(help: str = "How a sample's threads are created and joined.") -> Callable[..., Any]:
    return click.option("--protocol", type=click.Choice(protocol_names()), default="plain", show_default=True,
                        help=help)


class FiniteFloatRange(click.FloatRange):
    """click.FloatRange that also refuses nan and inf (Python's float() reads both, and
    a NaN compares false with every bound, so it would pass any range)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        rv = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(rv, param, ctx)


POLICY_HELP = "Policy name: " + ", ".join(POLICY_NAMES) + " (sc = self_consistency)."


class BackendType(click.Choice):
    """The registry's public backends; also accepts hidden test doubles without advertising them."""

    def __init__(self) -> None:
        super().__init__(CLI_BACKENDS)

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "[" + "|".join(PUBLIC_BACKENDS) + "]"

    def shell_complete(self, ctx, param, incomplete):  # type: ignore[no-untyped-def]
        from click.shell_completion import CompletionItem

        return [CompletionItem(c) for c in PUBLIC_BACKENDS if c.startswith(incomplete)]

    def get_missing_message(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "Choose from: " + ", ".join(PUBLIC_BACKENDS)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value not in self.choices:
            self.fail(f"{value!r} is not one of {', '.join(PUBLIC_BACKENDS)}.", param, ctx)
        return value


def parse_policy_args(items: tuple[str, ...] | list[str] | dict[str, Any] | None) -> dict[str, Any]:
    """`key=value` strings -> dict; values are read as JSON when they parse (8, 0.5, true,
    [1,2], "x"), else kept as strings."""
    if not items:
        return {}
    if isinstance(items, dict):
        return dict(items)
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise click.BadParameter(f"expected key=value, got {item!r}", param_hint="--policy-arg")
        key, raw = item.split("=", 1)
        key = key.strip().replace("-", "_")
        if not key:
            raise click.BadParameter(f"empty key in {item!r}", param_hint="--policy-arg")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _load_config(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Eager callback: read the file into ctx.default_map so later options default to it."""
    if value is None:
        return None
    path = Path(value)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise click.BadParameter(f"{value}: cannot read ({e.strerror or e})", ctx, param) from e
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        line = getattr(e, "lineno", None)
        where = f"{value}:{line}" if line else value
        raise click.BadParameter(f"{where}: not valid {'JSON' if path.suffix == '.json' else 'TOML'} ({e})",
                                 ctx, param) from e
    if not isinstance(data, dict):
        raise click.BadParameter(f"{value}: expected a table/object of option values", ctx, param)
    known = {p.name: p for p in ctx.command.params if p.name and p.name != "config"
             and isinstance(p, click.Option)}
    defaults: dict[str, Any] = {}
    for raw_key, v in data.items():
        key = raw_key.replace("-", "_")
        if key not in known:
            raise click.BadParameter(f"{value}: unknown key {raw_key!r}; valid keys: "
                                     f"{', '.join(sorted(known))}", ctx, param)
        if key in ("policy_args", "protocol_args") and isinstance(v, dict):
            v = [f"{k}={json.dumps(x)}" for k, x in v.items()]
        defaults[key] = v
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


def config_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--config", type=click.Path(dir_okay=False), is_eager=True, expose_value=False,
                        callback=_load_config,
                        help="TOML or JSON file with option values (same names); flags override it.")(f)


# --dtype values (parareason/backends/embedded/dtype_choice.py resolves auto).
DTYPE_CHOICES = ("auto", "float32", "bfloat16")
# --weights values (parareason/backends/embedded/weights.py).
WEIGHTS_CHOICES = ("full", "float16", "int8", "q8")
WEIGHTS_HELP = ("Embedded engine linear-layer weights: full (in --dtype, exact), float16 or int8 (fbgemm "
                "kernels, 2x / 4x fewer bytes; int8 rows depend on their batch), q8 (int8 weights and activations "
                "per 32-block, own kernel built on first use with cc: closer to full than int8, rows independent "
                "of their batch). See BENCHMARKS.md for measured speed and accuracy.")


def model_options(f: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option("--model", default=DEFAULT_MODEL, show_default=True,
                     help="Model alias (qwen2.5-0.5b-coder, smollm2-135m), HF directory or .gguf path."),
        click.option("--backend", type=BackendType(), default=DEFAULT_BACKEND, show_default=True,
                     help="; ".join(f"{n}: {BACKENDS[n].help}" for n in PUBLIC_BACKENDS) + "."),
        click.option("--url", "urls", multiple=True,
                     help="Server URL of a remote backend (repeat for several workers)."),
        click.option("--dtype", type=click.Choice(DTYPE_CHOICES), default="auto",
                     show_default=True, envvar="PARAREASON_DTYPE",
                     help="Embedded engine weights/compute dtype. auto times both on this CPU and "
                          "takes bfloat16 only where it is clearly faster (AMX CPUs)."),
        click.option("--weights", type=click.Choice(WEIGHTS_CHOICES), default="full", show_default=True,
                     envvar="PARAREASON_WEIGHTS", help=WEIGHTS_HELP),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def engine_options(backend: str, dtype: str, weights: str = "full") -> dict[str, Any]:
    """Backend-specific load options: dtype and weights are the embedded engine's; a server
    picks its own. weights=full is left out, so settings recorded before it existed still match."""
    if not BACKENDS[backend].takes_engine_options:
        return {}
    return {"dtype": dtype, **({"weights": weights} if weights != "full" else {})}


def sampling_options(f: Callable[..., Any], *, default_n: int = 8) -> Callable[..., Any]:
    opts = [
        click.option("-n", "--n", "n", type=click.IntRange(min=1), default=default_n, show_default=True,
                     help="Samples per prompt (the policy's n)."),
        click.option("--max-new-tokens", type=click.IntRange(min=1), default=512, show_default=True,
                     help="Max tokens per sample."),
        click.option("--temperature", type=FiniteFloatRange(min=0), default=0.7, show_default=True),
        click.option("--top-p", type=FiniteFloatRange(min=0, max=1, min_open=True), default=1.0,
                     show_default=True),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="Base seed; each sample's seed derives from it, so reruns repeat."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def output_options(f: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option("--resume", is_flag=True,
                     help="Continue an interrupted output: keep finished results, redo the rest."),
        click.option("--force", is_flag=True,
                     help="With --resume: accept results written under different settings."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar: one plain line per prompt."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def check_backend_args(backend: str, urls: tuple[str, ...]) -> None:
    needs_urls = BACKENDS[backend].needs_urls
    if needs_urls and not urls:
        raise click.UsageError(f"--backend {backend} needs at least one --url")
    if urls and not needs_urls:
        remote = ", ".join(n for n in PUBLIC_BACKENDS if BACKENDS[n].needs_urls)
        raise click.UsageError(f"--url is only used with a remote backend ({remote})")


def open_engine(model: str, backend: str, urls: tuple[str, ...], dtype: str = "auto", weights: str = "full") -> Any:
    """Load the backend once; a model or server that cannot be used is a clean CLI error."""
    import time

    from parareason.api import Engine
    from parareason.models import ModelError
    from parareason.backends.base import BackendError

    click.echo(f"loading {backend} backend ({model}) ...")
    t0 = time.monotonic()
    try:
        engine = Engine(model, backend=backend, urls=urls, **engine_options(backend, dtype, weights))
    except (ModelError, BackendError, OSError) as e:
        raise click.ClickException(f"cannot load {backend} backend for {model!r}: {e}") from None
    choice = getattr(engine.backend, "dtype_choice", None)
    fmt = getattr(getattr(engine.backend, "model", None), "weights", "full")
    click.echo(f"loaded in {time.monotonic() - t0:.1f}s" + (f", dtype {choice.describe()}" if choice else "")
               + (f", {fmt} weights" if fmt != "full" else ""))
    if engine.backend.facts:
        click.echo("server: " + ", ".join(f"{k}={v}" for k, v in engine.backend.facts.items()))
    return engine


def backend_failure(e: Exception, out: Any) -> click.ClickException:
    """A backend-wide failure mid-run: results so far are saved, say how to continue."""
    return click.ClickException(f"backend failed: {e}. Finished results are saved in {out}; "
                                "fix the backend and rerun with --resume.")


def open_results(path: Any, config: dict[str, Any], *, resume: bool, force: bool) -> Any:
    """Open a resumable JSONL output (results or traces); refusals become CLI errors."""
    from parareason.io.results import ResultFileError, ResultWriter

    writer = ResultWriter(path, config, resume=resume, force=force)
    try:
        return writer.open()
    except ResultFileError as e:
        raise click.ClickException(str(e)) from None


def parse_rows(spec: str | None) -> slice | None:
    """'32:64' -> slice(32, 64); ':32' and '32:' leave one end open; None -> None."""
    if spec is None:
        return None
    start, sep, end = spec.partition(":")
    try:
        if not sep:
            raise ValueError
        lo = int(start) if start.strip() else None
        hi = int(end) if end.strip() else None
    except ValueError:
        raise click.BadParameter(f"expected START:END (0-based, END excluded), got {spec!r}",
                                 param_hint="--rows") from None
    if (lo is not None and lo < 0) or (hi is not None and hi < 0) or (lo is not None and hi is not None and hi <= lo):
        raise click.BadParameter(f"{spec!r} selects no rows", param_hint="--rows")
    return slice(lo, hi)


rows_option = click.option(
    "--rows", "row_range", default=None, metavar="START:END",
    help="Only questions at these dataset rows (0-based, END excluded), e.g. 32:64 for a dev half.")


def labelled_trace_files(key: str, example: str) -> Callable[..., dict[str, Path]]:
    """A click callback reading KEY=PATH values (repeated) into {key: existing trace file}."""
    def parse(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, Path]:
        out: dict[str, Path] = {}
        for v in values:
            label, sep, path = v.partition("=")
            if not sep or not label.strip() or not path:
                raise click.BadParameter(f"{v!r}: expected {key}=PATH, e.g. {example}")
            if not Path(path).is_file():
                raise click.BadParameter(f"{path}: no such trace file")
            out[label.strip()] = Path(path)
        return out
    return parse


def select_rows(questions: list[Any], row_range: str | None) -> list[Any]:
    """The questions (in dataset order, each with a `.row`) whose dataset row is in --rows
    START:END; a question without a recorded row counts at its position."""
    rows = parse_rows(row_range)
    if rows is None:
        return questions
    at = [q.row if q.row is not None else i for i, q in enumerate(questions)]
    chosen = [q for q, r in zip(questions, at)
              if (rows.start is None or r >= rows.start) and (rows.stop is None or r < rows.stop)]
    if not chosen:
        raise click.BadParameter(f"no recorded question at rows {row_range}", param_hint="--rows")
    return chosen
