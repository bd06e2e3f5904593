"""The one background-thread loop of the service: woken on demand or every interval.

`Recorder` (writing the prediction log) and `S3Shipper` (uploading its
files) are both a daemon thread that sleeps until woken or until an interval
has passed, does a round of work, and does one last round when asked to
stop. Each only says what a round is.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod


class Worker(ABC):
    """A daemon thread running `round` when woken and at least every ``interval_s``.

    `stop` asks for one last round and waits for it; `finish` runs once after
    it, on the thread. A round must not raise: the loop would end with it.
    """

    def __init__(self, name: str, interval_s: float) -> None:
        self._interval_s = interval_s
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Run a round soon (cheap to call often: setting a set event is skipped)."""
        if not self._wake.is_set():
            self._wake.set()

    def stop(self, timeout: float) -> bool:
        """One last round, then `finish`; False if the thread is still busy after ``timeout`` s."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @abstractmethod
    def round(self) -> None:
        """One round of the subclass's work (must not raise)."""

    def finish(self) -> None:  # noqa: B027 - an optional hook, not an abstract one
        """After the last round, on the thread (nothing by default)."""

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval_s)
            self._wake.clear()
            stopping = self._stopping  # read before the round: its work is the last
            self.round()
            if stopping:
                break
        self.finish()
