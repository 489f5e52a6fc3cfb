"""The call transcript, keyed by conversation item and kept in conversation order.

Input transcription runs on a separate model and can finish after the assistant has started
answering (PROTOCOL §4 notes), so text is keyed by `item_id` and ordered by the provider's
`previous_item_id` links rather than by arrival. Deltas are kept as chunks and joined only when
read, so ingest cost stays linear in the number of deltas.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Literal

Role = Literal["user", "assistant"]
"""Who said a transcript entry."""


@dataclass(frozen=True, slots=True)
class TranscriptEntry:
    """One item's text; `final` once the provider sent the item's complete text."""

    item_id: str
    role: Role
    text: str
    final: bool


@dataclass(frozen=True, slots=True)
class TranscriptMark:
    """A point in a transcript's history, from `Transcript.mark()`."""

    included: int


class _Node:
    """One conversation item: its text, if any, and its place in the conversation."""

    __slots__ = (
        "children",
        "chunks",
        "final",
        "included_at",
        "item_id",
        "parent",
        "placed",
        "role",
    )

    def __init__(self, item_id: str) -> None:
        self.item_id = item_id
        self.role: Role | None = None
        self.chunks: list[str] = []
        self.final = False
        # Position in the order in which items first gained text; None while they have none.
        self.included_at: int | None = None
        self.placed = False
        self.parent: str | None = None
        # Items placed right after this one, in placement order.
        self.children: list[str] = []

    def text(self) -> str:
        if len(self.chunks) > 1:
            # Compacting keeps later reads from joining the same chunks again.
            self.chunks = ["".join(self.chunks)]
        return self.chunks[0] if self.chunks else ""


def _visible(text: str) -> bool:
    return bool(text) and not text.isspace()


class Transcript:
    """Accumulates user and assistant text per conversation item.

    Order: items linked by `place` follow the item they were placed after; an item placed
    after X comes right after X, ahead of items placed after X earlier, as the provider inserts
    it there. Items never placed, or placed after an item never seen, keep the order in which
    they first appeared. Items without visible text are left out of every read.
    """

    def __init__(self) -> None:
        self._nodes: dict[str, _Node] = {}
        self._roots: list[str] = []
        self._included = 0

    def _node(self, item_id: str) -> _Node:
        node = self._nodes.get(item_id)
        if node is None:
            node = self._nodes[item_id] = _Node(item_id)
        return node

    def _include(self, node: _Node) -> None:
        self._included += 1
        node.included_at = self._included

    def apply_delta(self, item_id: str, role: Role, delta: str) -> bool:
        """Append `delta` to the item's text; return whether anything changed.

        Empty deltas and deltas after the item's final text are ignored.
        """
        if not delta:
            return False
        node = self._node(item_id)
        if node.final:
            return False
        if node.role is None:
            node.role = role
        node.chunks.append(delta)
        if node.included_at is None and not delta.isspace():
            self._include(node)
        return True

    def apply_final(self, item_id: str, role: Role, text: str) -> bool:
        """Replace the item's text with its final `text`; return whether anything changed.

        A repeated final with the same text changes nothing.
        """
        node = self._node(item_id)
        if node.final and node.text() == text:
            return False
        if node.role is None:
            node.role = role
        node.chunks = [text]
        node.final = True
        if node.included_at is None and _visible(text):
            self._include(node)
        return True

    def place(self, item_id: str, previous_item_id: str | None) -> None:
        """Record that `item_id` follows `previous_item_id` (`None`: it starts the conversation).

        `None` never moves an item that already follows another: events that omit the field
        cannot be told from events that say the item comes first.
        """
        if previous_item_id == item_id:
            return
        node = self._node(item_id)
        if node.placed and (node.parent == previous_item_id or previous_item_id is None):
            return
        if previous_item_id is not None:
            # An unseen predecessor is created here so that it first appears now.
            self._node(previous_item_id)
        if node.placed:
            self._siblings(node.parent).remove(item_id)
        node.placed = True
        node.parent = previous_item_id
        self._siblings(previous_item_id).append(item_id)

    def _siblings(self, parent: str | None) -> list[str]:
        return self._roots if parent is None else self._nodes[parent].children

    def _ordered(self) -> Iterator[_Node]:
        floating = (node.item_id for node in self._nodes.values() if not node.placed)
        # Items caught in a cycle of links are reachable from neither; they come last.
        starts = chain(reversed(self._roots), floating, self._nodes)
        return self._walk(starts)

    def _walk(self, starts: Iterable[str]) -> Iterator[_Node]:
        visited: set[str] = set()
        for start in starts:
            stack = [start]
            while stack:
                item_id = stack.pop()
                if item_id in visited:
                    continue
                visited.add(item_id)
                node = self._nodes[item_id]
                yield node
                # The stack pops the latest placed child first, as it sits closest to its parent.
                stack.extend(node.children)

    def _entries(self, after: int) -> tuple[TranscriptEntry, ...]:
        entries: list[TranscriptEntry] = []
        for node in self._ordered():
            if node.included_at is None or node.included_at <= after or node.role is None:
                continue
            text = node.text()
            if _visible(text):
                entries.append(TranscriptEntry(node.item_id, node.role, text, node.final))
        return tuple(entries)

    def snapshot(self) -> tuple[TranscriptEntry, ...]:
        """Every entry with text, in conversation order."""
        return self._entries(after=0)

    def mark(self) -> TranscriptMark:
        """Remember which items have text now, for `since`."""
        return TranscriptMark(included=self._included)

    def since(self, mark: TranscriptMark) -> tuple[TranscriptEntry, ...]:
        """Entries, in conversation order, of items that had no text yet when `mark` was taken."""
        return self._entries(after=mark.included)
