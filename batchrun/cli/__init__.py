"""The command line: one click group, a command per verb. The only layer that prints.

Errors cross one boundary here: a BatchrunError becomes one line on stderr and its exit code;
anything unexpected becomes one line too (a traceback only with BATCHRUN_DEBUG=1).
"""

from __future__ import annotations

import gc
import os
import sys

import click

from .. import __version__
from ..errors import EXIT_RESUMABLE, EXIT_USAGE, BatchrunError
from .common import scrub
from .inspect import report_cmd, status_cmd
from .run import plan_cmd, run_cmd
from .worker import worker_cmd


class _Commands(click.Group):
    """The emulator's command (and its server libraries) is imported only when asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), "emulator"})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name == "emulator" and name not in self.commands:
            from ..emulator.cli import emulator

            self.add_command(emulator)
        return super().get_command(ctx, name)


@click.group(
    cls=_Commands,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="batchrun")
def cli() -> None:
    """Run FLORA techniques in bulk from a CSV, XLSX, JSONL or Parquet manifest.

    Every row becomes one technique run. Rerunning the same command resumes the batch and never
    pays for a row twice.
    """


cli.add_command(run_cmd)
cli.add_command(plan_cmd)
cli.add_command(status_cmd)
cli.add_command(report_cmd)
cli.add_command(worker_cmd)


def main(argv: list[str] | None = None) -> int:
    # Everything imported so far lives as long as the process: keep the collector off it.
    gc.freeze()
    try:
        result = cli.main(args=argv, prog_name="batchrun", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE if exc.exit_code == 1 else exc.exit_code
    except click.exceptions.Abort:
        click.echo("batchrun: interrupted; rerun the same command to resume", err=True)
        return EXIT_RESUMABLE
    except BatchrunError as exc:
        click.echo(f"batchrun: error: {scrub(str(exc))}", err=True)
        for line in getattr(exc, "problems", [])[1:]:
            click.echo(f"  {scrub(line)}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("batchrun: interrupted; rerun the same command to resume", err=True)
        return EXIT_RESUMABLE
    except Exception as exc:  # the one place a bug turns into a line instead of a traceback
        if os.environ.get("BATCHRUN_DEBUG"):
            raise
        click.echo(
            f"batchrun: internal error: {type(exc).__name__}: {scrub(str(exc))} "
            "(a bug: please report it; the journal is consistent, rerun to resume; "
            "BATCHRUN_DEBUG=1 shows the traceback)",
            err=True,
        )
        return EXIT_RESUMABLE
    return result if isinstance(result, int) else 0


def entry() -> None:
    """The `batchrun` process. It hands no Arrow data to numpy, and pyarrow works without it;
    importing numpy under pyarrow costs 0.2 s of CPU (most of the import) at the end of every
    batch that writes a Parquet report. In-process callers (tests, notebooks) keep numpy."""
    sys.modules.setdefault("numpy", None)  # type: ignore[arg-type]
    code = main()
    # The interpreter's last collection would walk every object the batch left (40 ms) only to
    # free memory that the exit frees anyway: everything is written and closed by now.
    gc.freeze()
    sys.exit(code)
