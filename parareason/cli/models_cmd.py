"""`parareason models`: the shipped model aliases and whether each is ready."""
from __future__ import annotations

import click


@click.command("models")
@click.option("--prepare", "prepare", multiple=True, metavar="ALIAS",
              help="Verify and convert this model into the cache now (repeatable).")
def models(prepare: tuple[str, ...]) -> None:
    """List model aliases (default marked *), their status and the cache directory."""
    from parareason.models import DEFAULT_MODEL, SHIPPED, ModelError, cache_root, model_status, resolve_model

    for name in prepare:
        try:
            click.echo(f"{name}: ready at {resolve_model(name)}")
        except ModelError as e:
            raise click.ClickException(str(e)) from e
    click.echo(f"cache: {cache_root()}")
    for alias, spec in SHIPPED.items():
        mark = "*" if alias == DEFAULT_MODEL else " "
        click.echo(f"{mark} {alias:<20} {model_status(alias):<45} {spec.description}")
    click.echo("Also accepted: a local Hugging Face model directory or a path to a .gguf file.")
