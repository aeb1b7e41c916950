"""`parareason` console script: a click group whose subcommands load lazily.

Each subcommand lives in its own module; loading lazily keeps `parareason --help`
fast (no torch import) and lets each command own its file.
"""
from __future__ import annotations

import importlib

import click

# name -> "module:attribute"
COMMANDS: dict[str, str] = {
    "run": "parareason.cli.run_cmd:run",
    "eval": "parareason.cli.eval_cmd:eval_cmd",
    "bench": "parareason.cli.bench_cmd:bench",
    "record": "parareason.cli.record_cmd:record",
    "replay": "parareason.cli.replay_cmd:replay",
    "judge": "parareason.cli.judge_cmd:judge",
    "serve": "parareason.cli.serve_cmd:serve",
    "models": "parareason.cli.models_cmd:models",
    "traces": "parareason.cli.traces_cmd:traces",
}


class LazyGroup(click.Group):
    commands_table: dict[str, str] = COMMANDS

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.commands_table)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = self.commands_table.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="parareason")
def main() -> None:
    """Adaptive parallel-reasoning decoding runtime."""


if __name__ == "__main__":
    main()
