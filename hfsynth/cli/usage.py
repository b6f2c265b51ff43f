"""Command-line mistakes (an unknown option, a port out of range, a missing argument) as one ``error:`` line.

click prints a usage error as a usage line, a hint and a boxed message; hfsynth prints every user mistake as one line
and a non-zero exit (``hfsynth.cli.user_errors`` does it for errors raised inside commands, this for those click
finds while parsing the command line).
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer._click import exceptions as click  # typer 0.2x vendors click: its exceptions, not the click package's


def run(app: typer.Typer, prog_name: str) -> int:
    """Run ``app`` on ``sys.argv`` and return the exit code; usage errors become one line on stderr (exit 2)."""
    try:
        result: Any = app(prog_name=prog_name, standalone_mode=False)
    except click.NoArgsIsHelpError as error:
        error.show()  # the help text, as `hfsynth` alone has always printed it
        return error.exit_code
    except click.UsageError as error:
        where = error.ctx.command_path if error.ctx is not None else prog_name
        message = " ".join(error.format_message().split())  # one line, whatever click wrapped
        print(f"error: {where}: {message} (see {where} --help)", file=sys.stderr)
        return error.exit_code
    except click.ClickException as error:
        print(f"error: {' '.join(error.format_message().split())}", file=sys.stderr)
        return error.exit_code
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 1
    # standalone_mode=False returns typer.Exit's code, or the command's return value (None).
    return result if isinstance(result, int) else 0
