"""The ``segnode`` command: one entry point with subcommands.

Every subcommand reports a user's mistake as one line ``segnode: error: ...`` with exit
code 2, never a traceback. Each command group lives in its own module (``model``: info and
convert-official; ``engine``: export and bench; ``replay``: replay, bag-from-images and demo;
``train``: train, equalize and eval); registering them imports nothing heavy, the handlers
import torch and the rest when they run.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
import logging
import sys

from segnode.cli import engine, model, replay, train
from segnode.errors import one_line, SegnodeError
from segnode.version import __version__

__all__ = ['main']

Handler = Callable[[argparse.Namespace], int]
# Commands renamed (old -> new): the old name gets one line naming the new one. ``calibrate``
# became ``equalize``: it measures the Scale Equalizer constants, and "calibration" means INT8
# quantisation only (``export --calibration``).
RENAMED_COMMANDS = {'calibrate': 'equalize'}


def _parser() -> tuple[argparse.ArgumentParser, dict[str, Handler]]:
    parser = argparse.ArgumentParser(
        prog='segnode', description='Real-time semantic segmentation (MFARANet) for ROS 2.'
    )
    parser.add_argument('--version', action='version', version=f'segnode {__version__}')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    handlers: dict[str, Handler] = {}
    for group in (model, replay, engine, train):
        group.add_commands(sub, handlers)
    return parser, handlers


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``segnode`` command line; returns the exit code."""
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0] in RENAMED_COMMANDS:
        old, new = words[0], RENAMED_COMMANDS[words[0]]
        print(f"segnode: error: 'segnode {old}' was renamed; use 'segnode {new}'", file=sys.stderr)
        return 2
    parser, handlers = _parser()
    args = parser.parse_args(words)
    args.own_command_line = argv is None  # the process's own arguments (may re-execute it)
    logging.basicConfig(level=logging.INFO, format='segnode: %(message)s')
    try:
        return handlers[args.command](args)
    except SegnodeError as err:
        print(f'segnode: error: {one_line(err)}', file=sys.stderr)
        return 2
    except OSError as err:  # a path that cannot be read or written, a full disk
        where = f'{err.filename}: ' if getattr(err, 'filename', None) else ''
        print(f'segnode: error: {where}{err.strerror or one_line(err)}', file=sys.stderr)
        return 2
    except ValueError as err:  # a value no check caught earlier: still one line, no traceback
        print(f'segnode: error: {one_line(err)}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('segnode: interrupted', file=sys.stderr)
        return 130
