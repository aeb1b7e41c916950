"""`--protocol-arg KEY=VALUE` (repeatable): protocol options such as `dialect=trained`.

Parsed like `--policy-arg` (values read as JSON when they parse) and checked against the
chosen protocol before any model loads.
"""
from __future__ import annotations

from typing import Any, Callable

import click

from parareason.cli.options import parse_policy_args

protocol_arg_option: Callable[..., Any] = click.option(
    "--protocol-arg", "protocol_args", multiple=True, metavar="KEY=VALUE",
    help="Protocol option (repeatable), e.g. --protocol-arg dialect=trained (the paper's checkpoint "
         "format; default prompted) or --protocol-arg n_paths=8.")


def protocol_args_for(protocol: str, items: tuple[str, ...] | list[str] | dict[str, Any] | None) -> dict[str, Any]:
    """The parsed options, validated by building the protocol once."""
    from parareason.runtime.protocols import get_protocol

    try:
        args = parse_policy_args(items)
    except click.BadParameter as e:
        raise click.BadParameter(e.message, param_hint="--protocol-arg") from None
    try:
        get_protocol(protocol, **args)
    except (ValueError, TypeError) as e:
        raise click.BadParameter(str(e), param_hint="--protocol-arg") from None
    return args
