"""Ctrl-C during training: the first press ends the run after the current step, a second at once.

The loop checks ``pressed`` after every step, saves its state and says how to resume; nothing
is interrupted half-way through an optimiser step. Loader workers ignore SIGINT
(``loader._init_worker``) so that they keep serving until the main process stops.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
import logging

from segnode.files import sigint_handled_by

__all__ = ['CtrlC']

_LOG = logging.getLogger('segnode.train')


class CtrlC:
    """Whether Ctrl-C was pressed while ``watch()`` was active."""

    def __init__(self) -> None:
        self.pressed = False

    def _handler(self, signum: int, frame: object) -> None:
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True
        _LOG.warning('Ctrl-C: saving after this iteration (Ctrl-C again to stop at once)')

    def watch(self) -> AbstractContextManager[None]:
        """Catch SIGINT inside the block (outside the main thread: leave it alone)."""
        return sigint_handled_by(self._handler)
