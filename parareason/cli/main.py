"""`parareason` console script: a click group whose subcommands load lazily.

Each subcommand lives in its own module; loading lazily keeps `parareason --help`
fast (no torch import) and lets each command own its file.
"""
from __future__ import annotations

import importlib
import importlib.util

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
}


class LazyGroup(click.Group):
    commands_table: dict[str, str] = COMMANDS

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in self.commands_table if self._importable(self.commands_table[name]))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = self.commands_table.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name == module_name:
                return None  # command not built yet
            raise
        return getattr(module, attr)

    @staticmethod
    def _importable(target: str) -> bool:
        return importlib.util.find_spec(target.split(":")[0]) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="parareason")
def main() -> None:
    """Adaptive parallel-reasoning decoding runtime."""


if __name__ == "__main__":
    main()
