"""The `storewire` command line."""

import typer

app = typer.Typer(help="Storewire: run the event graph locally and operate it.")


@app.callback()
def main() -> None:
    """Storewire command line."""
