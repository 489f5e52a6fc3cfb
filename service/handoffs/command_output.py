"""A `cmd:` handler's stdout, taken as it comes: progress lines and the answer (sans-I/O).

Lines starting `progress: ` are progress, the others the answer. Nothing is held past the text
cap: a line is cut where it could no longer fit, progress past the cap in all is dropped, and
once the answer is over the cap the output is full and the rest is ignored (the command is to be
killed then). Lines are split here rather than by `asyncio.StreamReader.readline`, which fails
on a line longer than its limit.
"""

from __future__ import annotations

from typing import Final

PROGRESS_PREFIX: Final = b"progress: "


class CommandOutput:
    """Feed it stdout's bytes, take the progress found, read the answer at the end."""

    def __init__(self, max_text_bytes: int) -> None:
        self.max_text_bytes = max_text_bytes
        # The longest line worth keeping: a progress line holding a text over the cap.
        self._max_line_bytes = len(PROGRESS_PREFIX) + max_text_bytes + 1
        self._line = bytearray()
        self._dropping = False
        self._answer = bytearray()
        self._progress: list[str] = []
        self._progress_bytes = 0
        self._ended = False

    @property
    def full(self) -> bool:
        """The answer is over the cap: what comes after it is not kept."""
        return len(self._answer) > self.max_text_bytes

    def feed(self, data: bytes) -> None:
        """Take bytes the command wrote (ignored once full or ended)."""
        start = 0
        while start < len(data) and not (self.full or self._ended):
            end = data.find(b"\n", start)
            stop = len(data) if end == -1 else end
            if not self._dropping:
                room = self._max_line_bytes - len(self._line)
                self._line += data[start : min(stop, start + room)]
                if len(self._line) >= self._max_line_bytes:
                    # The rest of this line could not be kept: it is dropped as it comes.
                    self._end_line()
                    self._dropping = True
            if end == -1:
                return
            if not self._dropping:
                self._end_line()
            self._dropping = False
            start = end + 1

    def end(self) -> None:
        """No more output will be taken; a last line without its newline counts."""
        if self._line and not (self.full or self._ended):
            self._end_line()
        self._ended = True

    def take_progress(self) -> list[str]:
        """The progress texts found since the last call."""
        taken, self._progress = self._progress, []
        return taken

    def answer(self) -> str:
        """The answer: stripped; a full one cut a byte past the cap, for the owner to mark."""
        if self.full:
            return self._answer[: self.max_text_bytes + 1].decode(errors="replace")
        return self._answer.decode(errors="replace").strip()

    def _end_line(self) -> None:
        line = bytes(self._line)
        self._line.clear()
        if line.startswith(PROGRESS_PREFIX):
            if self._progress_bytes <= self.max_text_bytes:
                self._progress_bytes += len(line) - len(PROGRESS_PREFIX)
                self._progress.append(line[len(PROGRESS_PREFIX) :].decode(errors="replace"))
            return
        self._answer += b"\n" + line if self._answer else line
