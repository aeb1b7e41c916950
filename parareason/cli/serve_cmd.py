"""`parareason serve`: the OpenAI-compatible HTTP server (see docs/serve.md)."""
from __future__ import annotations

import ipaddress

import click

from parareason.cli.options import (
    FiniteFloatRange, check_backend_args, engine_options, model_options, parse_policy_args, protocol_option,
)
from parareason.cli.protocol_args import protocol_arg_option, protocol_args_for


def exposure_warning(host: str, api_key: str | None) -> str | None:
    """A start-up warning when the server listens beyond loopback without an API key."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if loopback or api_key:
        return None
    return (f"WARNING: listening on {host} without --api-key (or PARAREASON_API_KEY): anyone who can "
            "reach this port can run requests. The default --host 127.0.0.1 serves this machine only.")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@model_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--served-model-name", default=None,
              help="Model id clients send (default: --model). Suffixes +policy / +protocol pick per request.")
@click.option("--policy", default="sc", show_default=True,
              help="Default policy: sc, ffs, deepconf, bom, multi_temp, rpc, scale, deepprune.")
@click.option("--policy-arg", "policy_args", multiple=True, metavar="KEY=VALUE",
              help="Policy parameter (repeatable; values parse as JSON): KEY=VALUE for the default policy, "
                   "POLICY.KEY=VALUE for requests that pick POLICY (e.g. deepprune.judge=answer).")
@protocol_option("Default protocol.")
@protocol_arg_option
@click.option("-n", "--n", "n", type=click.IntRange(min=1), default=4, show_default=True,
              help="Default samples per request (the policy's n).")
@click.option("--max-n", type=click.IntRange(min=1), default=64, show_default=True,
              help="Largest n a request may ask for.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=512, show_default=True,
              help="Per-sample tokens when a request sends no max_tokens.")
@click.option("--max-tokens-limit", type=click.IntRange(min=1), default=4096, show_default=True,
              help="Largest max_tokens a request may ask for.")
@click.option("--temperature", type=FiniteFloatRange(min=0), default=0.7, show_default=True)
@click.option("--top-p", type=FiniteFloatRange(min=0, max=1, min_open=True), default=1.0, show_default=True)
@click.option("--seed", type=int, default=None,
              help="Seed for requests that send none (default: a random seed per request).")
@click.option("--budget", type=click.IntRange(min=1), default=None,
              help="Default max generated tokens per request (all threads together).")
@click.option("--deadline", type=FiniteFloatRange(min=0, min_open=True), default=300.0, show_default=True,
              help="Default wall-clock seconds per request.")
@click.option("--max-deadline", type=FiniteFloatRange(min=0, min_open=True), default=3600.0, show_default=True,
              help="Largest deadline a request may ask for.")
@click.option("--max-in-flight", type=click.IntRange(min=1), default=16, show_default=True,
              help="Requests running at once; more get HTTP 429.")
@click.option("--api-key", envvar="PARAREASON_API_KEY", default=None, show_envvar=True,
              help="Require `Authorization: Bearer KEY` on every path but /health (401 otherwise). "
                   "Without it, anyone who can reach the port can use the server.")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              default="info", show_default=True)
def serve(model: str, backend: str, urls: tuple[str, ...], dtype: str, weights: str, host: str, port: int, served_model_name: str | None,
          policy: str, policy_args: tuple[str, ...], protocol: str, protocol_args: tuple[str, ...], n: int,
          max_n: int, max_new_tokens: int,
          max_tokens_limit: int, temperature: float, top_p: float, seed: int | None, budget: int | None,
          deadline: float, max_deadline: float, max_in_flight: int, api_key: str | None, log_level: str) -> None:
    """Serve /v1/chat/completions, /v1/completions, /v1/models and /health.

    Each request runs the policy (default --policy, or `"parareason": {"policy": ...}`
    in the request body, or a model suffix like `qwen2.5-0.5b-coder+ffs`); requests in
    flight share one scheduler loop and one backend batch.
    """
    check_backend_args(backend, urls)
    if api_key is not None and not api_key.strip():
        raise click.BadParameter("must not be empty", param_hint="--api-key")
    if max_new_tokens > max_tokens_limit:
        raise click.BadParameter("must be <= --max-tokens-limit", param_hint="--max-new-tokens")
    if deadline > max_deadline:
        raise click.BadParameter("must be <= --max-deadline", param_hint="--deadline")
    from parareason.server.routing import Router, RoutingError, ServeDefaults

    defaults = ServeDefaults(
        model_id=served_model_name or model, policy=policy, policy_args=parse_policy_args(policy_args),
        model=model, protocol=protocol, protocol_args=protocol_args_for(protocol, protocol_args, model), n=n,
        max_n=max(max_n, n),
        max_new_tokens=max_new_tokens,
        max_new_tokens_limit=max_tokens_limit, temperature=temperature, top_p=top_p, seed=seed, budget=budget,
        deadline_s=deadline, max_deadline_s=max_deadline)
    try:  # a bad default policy fails now, before the model loads
        probe = Router(defaults).route(model=defaults.model_id, options=None, temperature=None, top_p=None,
                                       seed=0, max_new_tokens=None, stop=())
        Router(defaults).make_policy(probe)  # DeepPrune's judge loads later, with the first request
    except RoutingError as e:
        raise click.BadParameter(e.message, param_hint="--policy/--policy-arg") from None

    import uvicorn

    from parareason.backends.registry import load_backend
    from parareason.server.app import create_app

    click.echo(f"loading {backend} backend ({model}) ...")
    be = load_backend(backend, model, urls, **engine_options(backend, dtype, weights))
    app = create_app(be, defaults, max_in_flight=max_in_flight, close_backend=True, api_key=api_key or None)
    click.echo(f"serving {defaults.model_id} on http://{host}:{port}/v1 (policy {policy}, n={n}, "
               f"max {max_in_flight} in flight, {'API key required' if api_key else 'no API key'})")
    warning = exposure_warning(host, api_key)
    if warning:
        click.echo(warning, err=True)
    # On shutdown, open streams get a few seconds; then they are cancelled (their threads aborted).
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
