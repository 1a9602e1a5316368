"""The root command group. Commands are imported only when used, and no command module
imports torch or transformers at import time, so ``bertcli --help`` is instant."""

from __future__ import annotations

import errno
import importlib
import os
import signal
import sys

import click

from .. import __version__
from ..errors import BertcliError, InputError

COMMANDS = {
    "fill-mask": "bertcli.cli.fill_mask:fill_mask_cmd",
    "nsp": "bertcli.cli.nsp:nsp_cmd",
    "classify": "bertcli.cli.classify:classify_cmd",
    "sentiment": "bertcli.cli.sentiment:sentiment_cmd",
    "ner": "bertcli.cli.ner:ner_cmd",
    "train": "bertcli.cli.train:train_group",
    "evaluate": "bertcli.cli.evaluate:evaluate_cmd",
    "tokenize": "bertcli.cli.tokenize:tokenize_cmd",
    "attention": "bertcli.cli.attention:attention_cmd",
}


def format_error(e: BertcliError) -> str:
    """``Error: <where>: <message>; <hint>`` on one line: any line break in it (a file name,
    a field name: ``\\r``, ``\\x85``, U+2028 as well as ``\\n``) becomes a space."""
    msg = e.message
    if isinstance(e, InputError) and (e.line is not None or e.source):
        msg = f"{e.where()}: {msg}"
    if e.hint:
        msg = f"{msg}; {e.hint}"
    return "Error: " + " ".join(msg.splitlines())


class LazyGroup(click.Group):
    """Imports a command's module on first use; turns BertcliError into a one-line message and
    its exit status (2 for a UsageError, else 1)."""

    def list_commands(self, ctx):
        return [c for c in COMMANDS if self._load(c) is not None]

    def get_command(self, ctx, name):
        return self._load(name)

    def _load(self, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        mod, attr = target.split(":")
        try:
            return getattr(importlib.import_module(mod), attr)
        except ImportError:  # a command that is not built in this version
            return None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BertcliError as e:
            click.echo(format_error(e), err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)
        except BrokenPipeError:
            raise
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EFBIG):
                click.echo(f"Error: cannot write: {e.strerror}", err=True)
                ctx.exit(1)
            raise


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="bertcli")
def cli():
    """Fast, streaming BERT from the shell: fill-mask, nsp, classify, sentiment, ner, train,
    evaluate, tokenize and attention.

    Every command takes texts as arguments, or reads records (plain lines, JSONL,
    CSV, TSV) from --input FILE or stdin, and writes a table on a terminal or JSONL
    in a pipe. Models are local folders (--model DIR or $BERTCLI_MODEL); nothing is
    ever downloaded.

    \b
    Examples:
      bertcli sentiment "I loved it"
      bertcli fill-mask "She opened the [MASK] and walked into the room."
      cat news.txt | bertcli ner --format jsonl | jq '.entities'
    """


def main(argv=None):
    """Console entry point."""
    if hasattr(signal, "SIGPIPE"):
        # `bertcli ... | head -1`: die quietly like any Unix filter when the reader goes away.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    # numpy's BLAS (OpenBLAS, read at numpy's import) runs the fast path's small products on
    # one thread: its spinning threads lose badly beside any other busy process (issue #18)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        cli.main(args=argv, prog_name="bertcli")
    except BrokenPipeError:
        sys.exit(0)


if __name__ == "__main__":
    main()
