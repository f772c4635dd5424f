"""What preprocessing has done so far, on stderr: a bar on a terminal, lines in a log."""

from __future__ import annotations

import sys
import time


def clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds + 0.5), 60)
    return f"{minutes}:{seconds:02d}"


class TextProgress:
    """Progress through a corpus, in characters of text.

    On a terminal, a bar redrawn in place, shown once the corpus is known to hold at least
    ``bar_from`` characters or the work has taken ``after`` seconds. Elsewhere (a log, CI)
    a line every ``every`` seconds. With ``total`` unknown (no cache key was computed)
    the bar has no percentage.
    """

    def __init__(self, total: int | None = None, stream=None, every: float = 10.0,
                 bar_from: float = 4e6, after: float = 2.0):
        self.total, self.stream = total, stream or sys.stderr
        self.every, self.after = every, after
        self.silent = self.stream is None  # no stderr at all (pythonw, some services)
        self.terminal = not self.silent and getattr(self.stream, "isatty", lambda: False)()
        self.big = total is not None and total >= bar_from
        self.start = self.last = time.perf_counter()
        self.documents = self.characters = 0
        self.shown = False

    def update(self, documents: int, characters: int) -> None:
        """``documents`` and ``characters`` are the totals done so far."""
        self.documents, self.characters = documents, characters
        now = time.perf_counter()
        if self.silent:
            return
        if self.terminal:
            if (self.big or now - self.start >= self.after) and now - self.last >= 0.2:
                self.last, self.shown = now, True
                print(f"\r{self.bar(now)}", end="", file=self.stream, flush=True)
        elif now - self.last >= self.every:
            self.last, self.shown = now, True
            print(self.line(now), file=self.stream, flush=True)

    def close(self) -> None:
        """The final figures, if anything was shown."""
        if self.shown:
            now = time.perf_counter()
            end = f"\r{self.bar(now)}\n" if self.terminal else f"{self.line(now)}\n"
            print(end, end="", file=self.stream, flush=True)

    def rate(self, now: float) -> float:
        return self.characters / 1e6 / max(now - self.start, 1e-9)

    def remaining(self, now: float) -> str:
        rate = self.rate(now)
        if self.total is None or not rate:
            return ""
        return f", {clock(max(self.total - self.characters, 0) / 1e6 / rate)} left"

    def line(self, now: float) -> str:
        done = f"{self.characters / 1e6:.1f} MB"
        if self.total:
            done += f" of {self.total / 1e6:.1f} MB ({self.characters / self.total:.0%})"
        return (f"preprocessing: {self.documents} documents, {done} of text, "
                f"{self.rate(now):.2f} MB/s{self.remaining(now)}")

    def bar(self, now: float, width: int = 30) -> str:
        if self.total:
            filled = round(width * min(self.characters / self.total, 1.0))
            shape = f"{'█' * filled}{'░' * (width - filled)} {self.characters / self.total:4.0%} "
        else:
            shape = ""
        return (f"preprocessing {shape}{self.characters / 1e6:.1f} MB, {self.documents} "
                f"documents, {self.rate(now):.2f} MB/s{self.remaining(now)}  ")
