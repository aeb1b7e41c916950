"""`--protocol-arg KEY=VALUE` (repeatable): protocol options such as `dialect=trained`.

Parsed like `--policy-arg` (values read as JSON when they parse) and checked against the
chosen protocol before any model loads. A `--model` naming a released checkpoint of the
protocol adds `dialect=trained` unless a dialect is given (runtime/protocols/checkpoints.py).
"""
from __future__ import annotations

from typing import Any, Callable

import click

from parareason.cli.options import parse_policy_args

protocol_arg_option: Callable[..., Any] = click.option(
    "--protocol-arg", "protocol_args", multiple=True, metavar="KEY=VALUE",
    help="Protocol option (repeatable), e.g. --protocol-arg dialect=trained (the paper's checkpoint "
         "format; default prompted, or trained when --model names a released checkpoint) or "
         "--protocol-arg n_paths=8.")


def protocol_args_for(protocol: str, items: tuple[str, ...] | list[str] | dict[str, Any] | None,
                      model: str | None = None) -> dict[str, Any]:
    """The parsed options, validated by building the protocol once; `dialect=trained` is
    added when `model` names a released checkpoint of the protocol (a given dialect wins)."""
    from parareason.runtime.protocols import get_protocol, with_default_dialect

    try:
        args = with_default_dialect(protocol, model, parse_policy_args(items))
    except click.BadParameter as e:
        raise click.BadParameter(e.message, param_hint="--protocol-arg") from None
    try:
        get_protocol(protocol, **args)
    except (ValueError, TypeError) as e:
        raise click.BadParameter(str(e), param_hint="--protocol-arg") from None
    return args
