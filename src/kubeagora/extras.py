"""The optional extras a command needs, named in one line when one is missing.

The core install (the simulator, the bench) needs neither kopf nor aiohttp; the cluster commands do.
Each cluster command imports its dependencies when it runs, inside ``needs_extra``: a missing module
becomes one line on stderr naming the extra and the pip command, and exit status 2, never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

USAGE_ERROR = 2


def missing_extra_message(command: str, extra: str, module: str) -> str:
    return (f"`kubeagora {command}` needs the '{extra}' extra (module {module!r} is not installed): "
            f"pip install 'kubeagora[{extra}]'")


@contextmanager
def needs_extra(extra: str, command: str) -> Iterator[None]:
    """Run the imports of `command` under this; a third-party module that is missing exits 2 with one line.

    An ImportError of kubeagora's own modules is a bug, not a missing extra: it propagates.
    """
    try:
        yield
    except ImportError as e:
        module = e.name or ""
        if not module or module.split(".")[0] == "kubeagora":
            raise
        typer.echo(f"error: {missing_extra_message(command, extra, module)}", err=True)
        raise typer.Exit(USAGE_ERROR) from None
