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
from typing import Any, Literal

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
        "size",
    )

    def __init__(self, item_id: str) -> None:
        self.item_id = item_id
        self.role: Role | None = None
        self.chunks: list[str] = []
        # UTF-8 bytes of the text, for the call's transcript byte cap.
        self.size = 0
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

    Bounded: at most `max_items` items and `max_bytes` bytes of UTF-8 text. Past a cap, new
    items and text are dropped and counted in `dropped_items` and `dropped_bytes`.
    """

    def __init__(self, *, max_items: int = 10_000, max_bytes: int = 1_000_000) -> None:
        self._nodes: dict[str, _Node] = {}
        self._roots: list[str] = []
        self._included = 0
        self._bytes = 0
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.dropped_items = 0
        self.dropped_bytes = 0

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._nodes

    @property
    def size(self) -> int:
        """UTF-8 bytes of text held."""
        return self._bytes

    def _node(self, item_id: str) -> _Node | None:
        node = self._nodes.get(item_id)
        if node is None:
            if len(self._nodes) >= self.max_items:
                self.dropped_items += 1
                return None
            node = self._nodes[item_id] = _Node(item_id)
        return node

    def _resize(self, node: _Node, new_size: int) -> bool:
        if self._bytes - node.size + new_size > self.max_bytes:
            self.dropped_bytes += max(new_size - node.size, 0)
            return False
        self._bytes += new_size - node.size
        node.size = new_size
        return True

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
        if node is None or node.final:
            return False
        if not self._resize(node, node.size + len(delta.encode())):
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
        if node is None or (node.final and node.text() == text):
            return False
        if not self._resize(node, len(text.encode())):
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
        if node is None:
            return
        if node.placed and (node.parent == previous_item_id or previous_item_id is None):
            return
        # An unseen predecessor is created here so that it first appears now.
        if previous_item_id is not None and self._node(previous_item_id) is None:
            return
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

    def to_json(self) -> dict[str, Any]:
        """Every item with its text and place, JSON-able, for `from_json`."""
        return {
            "included": self._included,
            "roots": list(self._roots),
            "items": [
                {
                    "item_id": n.item_id,
                    "role": n.role,
                    "text": n.text(),
                    "final": n.final,
                    "included_at": n.included_at,
                    "placed": n.placed,
                    "parent": n.parent,
                    "children": list(n.children),
                }
                for n in self._nodes.values()
            ],
        }

    @classmethod
    def from_json(
        cls, data: dict[str, Any], *, max_items: int = 10_000, max_bytes: int = 1_000_000
    ) -> Transcript:
        """Rebuild from `to_json` output; raise `ValueError` on a bad shape."""
        transcript = cls(max_items=max_items, max_bytes=max_bytes)
        try:
            for raw in data["items"]:
                node = transcript._node(str(raw["item_id"]))
                if node is None:
                    break
                role = raw["role"]
                node.role = role if role in ("user", "assistant") else None
                text = str(raw["text"])
                if text and transcript._resize(node, len(text.encode())):
                    node.chunks = [text]
                node.final = bool(raw["final"])
                node.included_at = raw["included_at"]
                node.placed = bool(raw["placed"])
                node.parent = raw["parent"]
                node.children = [str(c) for c in raw["children"]]
            transcript._roots = [str(r) for r in data["roots"]]
            transcript._included = int(data["included"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"bad transcript snapshot: {exc}") from None
        known = transcript._nodes
        # Links to items beyond the cap are dropped rather than followed.
        transcript._roots = [r for r in transcript._roots if r in known]
        for node in known.values():
            node.children = [c for c in node.children if c in known]
            if node.parent is not None and node.parent not in known:
                node.parent, node.placed = None, False
        return transcript
