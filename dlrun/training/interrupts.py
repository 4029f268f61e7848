"""Ctrl-C and SIGTERM while training: finish the epoch in flight, checkpoint it, stop; a second one stops at once.

`kill`, `timeout`, Docker and job schedulers send SIGTERM; a terminal sends SIGINT (Ctrl-C). Both
are handled alike. Stopping at an epoch's end keeps the run exact: the checkpoint, history.csv and
the saved model all hold whole epochs, and `dlrun train --resume` continues as if never stopped.
An epoch can be long, so a second signal raises `KeyboardInterrupt` at once.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class StopRequest:
    """Whether a signal asked training to stop, and which."""

    signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number (130 for Ctrl-C)."""
        return 128 + (self.signum or signal.SIGINT)


@contextlib.contextmanager
def stop_requests() -> Iterator[StopRequest]:
    """Turn SIGINT and SIGTERM into a `StopRequest` while the block runs; restore the handlers after.

    A signal that was ignored when the block began (a job started with `&` from a script ignores
    SIGINT) stays ignored. Outside the main thread signals cannot be handled, and nothing changes.
    """
    request = StopRequest()

    def on_signal(signum, frame) -> None:
        if request.requested:
            raise KeyboardInterrupt
        request.signum = signum
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        sys.stderr.write(f"\n{name}: stopping at the end of this epoch (press Ctrl-C again to stop at once)\n")
        sys.stderr.flush()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(signum, on_signal)
    try:
        yield request
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
