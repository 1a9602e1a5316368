"""Output for the CLI: choose a writer, run the record loop with the error/interrupt contract.

Contract (see README "stdout, stderr and exit codes"):
* stdout carries results only, one record per good input record, in input order,
  flushed window by window; everything else goes to stderr.
* ``--on-error fail``: at the first bad record every earlier result is already written;
  then ``Error: <source>, line N: <why>`` and exit 1.
* ``--on-error skip``: a JSON error record ``{"error", "line", "source"}`` goes to stderr
  (``{"error", "text", "source"}`` for a text given as an argument: its 1-based position)
  and the run goes on; exit 0, with a count of skipped records at the end. A *fatal*
  bad record (nothing after it can be read: an unclosed CSV quote, a broken JSON array)
  stops the run as with ``fail``, so that no record is lost silently.
* SIGINT/SIGTERM: the record being written is finished, then the run stops with exit
  130/143; the output holds whole lines only.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable, Iterable

import click

from ..errors import BertcliError, InputError
from ..io.readers import Record
from ..io.writers import JsonArrayWriter, JsonlWriter
from ..schema import output_names


def stderr_console():
    from rich.console import Console
    return Console(stderr=True, highlight=False)


def warn(msg: str, quiet: bool = False) -> None:
    if not quiet:
        click.echo(f"Warning: {msg}", err=True)


class TableWriter:
    """Rich tables for a person at a terminal, printed in chunks so long runs stream."""

    CHUNK = 200

    def __init__(self, columns: list[str], rows_of: Callable[[dict], list[list[str]]], precision: int = 4,
                 file=None):
        from rich.console import Console
        # Cells are user text: "[/x]" or ":smile:" must print as written, not as rich
        # markup (an unmatched closing tag even raised MarkupError) or emoji codes.
        self.console = Console(highlight=False, soft_wrap=False, markup=False, emoji=False, file=file)
        self.columns, self.rows_of, self.rows, self.count = columns, rows_of, [], 0
        self.precision = precision
        self.progress = None  # a live progress display on the same terminal: cleared around each table

    def write(self, record: dict) -> None:
        self.rows.extend(self.rows_of(record))
        self.count += 1
        if len(self.rows) >= self.CHUNK:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        from rich.table import Table
        t = Table(*self.columns, show_lines=False, header_style="bold")
        for r in self.rows:
            t.add_row(*r)
        with paused(self.progress if self.console.is_terminal else None):
            self.console.print(t)
        self.rows = []

    def close(self) -> None:
        self.flush()


def make_writer(fmt: str | None, precision: int, columns: list[str], rows_of, stream=None):
    """The writer for ``--format``; ``stream`` (an output file) defaults to stdout."""
    out = stream or sys.stdout
    if fmt is None:
        fmt = "table" if out.isatty() else "jsonl"
    if fmt == "table":
        return TableWriter(columns, rows_of, file=stream)
    if fmt == "json":
        return JsonArrayWriter(out, precision)
    return JsonlWriter(out, precision)


def input_names(fields, result_keys) -> dict[str, str]:
    """The key each input field is written under beside results with ``result_keys``: its own
    name, or, when a result key takes it, ``input_<name>`` (``input_input_<name>`` and so on
    while that is taken too), so chaining commands loses no field. ``compose`` writes by it
    and ``--resume`` reads by it (:func:`bertcli.io.resume.check_last`)."""
    return output_names(list(fields), result_keys)


def compose(rec: Record, result: dict, pairs: bool = False, collisions: set | None = None) -> dict:
    """The output record: input fields (JSONL/CSV) or the text, then the results beside them.

    A result key that collides with an input field wins; the input value moves to the name
    :func:`input_names` gives (reported once through ``collisions``).
    """
    if rec.fields is not None:
        names = input_names(rec.fields, result)
        out = {k: v for k, v in rec.fields.items() if names[k] == k}
        for k in result:  # renamed fields follow the others, in result order
            if names.get(k, k) != k:
                out[names[k]] = rec.fields[k]
                if collisions is not None:
                    collisions.add(k)
    else:
        out = {"text": rec.text}
        if pairs:
            out["text_pair"] = rec.text_pair
    out.update(result)
    return out


class _Interrupts:
    """Defer SIGINT/SIGTERM while a record is being written, so output stays whole lines."""

    def __init__(self):
        self.writing = False
        self.pending: int | None = None

    def __enter__(self):
        self.old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in self.old:
            signal.signal(s, self.handler)
        return self

    def __exit__(self, *exc):
        for s, h in self.old.items():
            signal.signal(s, h)

    def handler(self, signum, frame):
        if self.writing:
            self.pending = signum
        else:
            raise KeyboardInterrupt(signum)

    def check(self):
        if self.pending is not None:
            raise KeyboardInterrupt(self.pending)


def write_results(results: Iterable[tuple[Record, dict | None]], writer, *, on_error: str, source: str,
                  pairs: bool = False, quiet: bool = False,
                  transform: Callable[[Record, dict], dict] | None = None) -> int:
    """Consume ``(record, result)`` pairs and write them; returns the number of skipped records.

    Raises:
        InputError: a bad record with ``on_error == "fail"``, or a fatal one (see
            :class:`~bertcli.io.readers.Record`), after writing all records before it.
        click.exceptions.Exit: on SIGINT (130) / SIGTERM (143), after finishing the line.
    """
    skipped = 0
    collisions: set = set()
    warned_trunc = False
    with _Interrupts() as intr:
        try:
            for rec, res in results:
                for kind, msg in rec.notices:  # how the input was read (the first record only)
                    if not quiet:
                        click.echo(f"{kind.capitalize()}: {msg}", err=True)
                if rec.error is not None:
                    if on_error == "fail" or rec.fatal:
                        writer.close()
                        # an argument has no line: name its position among the texts instead
                        where = source if rec.line is not None else f"{source}, text {rec.index + 1}"
                        raise InputError(rec.error, line=rec.line, source=where)
                    skipped += 1
                    report = {"error": rec.error, "line": rec.line, "source": source}
                    if rec.line is None:  # an argument: its 1-based position among the texts
                        report = {"error": rec.error, "text": rec.index + 1, "source": source}
                    click.echo(json.dumps(report, ensure_ascii=False), err=True)
                    continue
                if transform is not None:
                    res = transform(rec, res)
                if res.get("truncated") and not warned_trunc:
                    warned_trunc = True
                    where = f"line {rec.line}" if rec.line else f"text {rec.index + 1}"
                    warn(f"{where}: text longer than the model's maximum was truncated "
                         "(records carry truncated: true; further warnings suppressed)", quiet)
                n_before = len(collisions)
                out = compose(rec, res, pairs, collisions)
                if isinstance(writer, TableWriter):
                    # the table shows the text whatever field it came from
                    out = {**out, "text": rec.text, "text_pair": rec.text_pair}
                intr.writing = True
                writer.write(out)
                intr.writing = False
                if len(collisions) != n_before:
                    warn(f"input field(s) {', '.join(sorted(collisions))} renamed to input_<name>: "
                         "the result uses the same key", quiet)
                intr.check()
            writer.close()
        except BertcliError:
            # e.g. a CSV header without the field, found on the first read: keep stdout
            # valid (``[]`` for -f json) before the error is reported.
            try:
                writer.close()
            except Exception:
                pass
            raise
        except KeyboardInterrupt as e:
            intr.writing = False
            try:
                writer.close()
            except Exception:
                pass
            signum = e.args[0] if e.args and isinstance(e.args[0], int) else signal.SIGINT
            click.echo("Interrupted: output holds whole records only.", err=True)
            raise click.exceptions.Exit(128 + int(signum)) from None
    if skipped:
        warn(f"skipped {skipped} bad record(s) (reported above as JSON on stderr)", quiet)
    return skipped


def live_progress(*columns, transient: bool = True):
    """A rich ``Progress`` on stderr that never touches stdout.

    rich's ``Live`` redirects ``sys.stdout`` into its own console by default: with stderr a
    terminal and stdout a pipe (``bertcli ner -i x | jq``) the results then went to the
    terminal, not the pipe. stdout is left alone here; writers that print to the same
    terminal pause the display around their output (:func:`paused`). stderr stays
    redirected, so notices and warnings print above the display, not on its line."""
    from rich.progress import Progress

    return Progress(*columns, console=stderr_console(), transient=transient, redirect_stdout=False)


class paused:
    """Context manager: the live progress display ``prog`` (or None) is cleared while the
    block prints to the terminal, then drawn again, so a spinner never shares a line with a
    table row or a message."""

    def __init__(self, prog):
        self.prog = prog
        self.was_live = False

    def __enter__(self):
        live = getattr(self.prog, "live", None)
        self.was_live = bool(live is not None and live.is_started)
        if self.was_live:
            self.prog.stop()
        return self

    def __exit__(self, *exc):
        if self.was_live:
            self.prog.start()
        return False


def count_records(texts, input_path: str | None, pairs: bool = False) -> int | None:
    """How many records the input holds, where that is cheap to know: the texts given as
    arguments (``pairs``: two texts a record, as ``nsp`` takes them), or the lines of an input
    file (a header row and blank JSONL lines make it an estimate, corrected as records
    arrive). None for stdin."""
    if texts:
        return len(texts) // 2 if pairs else len(texts)
    if not input_path or input_path == "-":
        return None
    import os

    try:
        if not os.path.isfile(input_path):
            return None
        n, last = 0, b"\n"
        with open(input_path, "rb") as f:
            while chunk := f.read(1 << 20):
                n += chunk.count(b"\n")
                last = chunk[-1:]
        return n + (last != b"\n")
    except OSError:
        return None


def progress_callback(quiet: bool, total: int | None = None):
    """A progress display on stderr when it is a terminal, else ``(None, None)``.

    Shows records done (of ``total`` with a bar and an ETA when the input size is known),
    records per second and the elapsed time; the spinner keeps moving during one long
    record. Returns ``(callback(n_done), progress)``."""
    if quiet or not sys.stderr.isatty():
        return None, None
    from rich.progress import (BarColumn, ProgressColumn, SpinnerColumn, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task):
            return Text(f"{task.speed:,.0f} records/s" if task.speed else "", style="progress.data.speed")

    cols = [SpinnerColumn()]
    if total:
        cols += [BarColumn(), TextColumn("{task.completed:,} of {task.total:,} records"), Rate(),
                 TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    else:
        cols += [TextColumn("{task.completed:,} records"), Rate(), TimeElapsedColumn()]
    prog = live_progress(*cols)
    task = prog.add_task("run", total=total or None)
    prog.start()

    def update(n: int) -> None:
        t = prog.tasks[0].total
        prog.update(task, completed=n, **({"total": n} if t is not None and n > t else {}))

    return update, prog
