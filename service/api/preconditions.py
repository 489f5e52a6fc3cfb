"""`If-Match` (RFC 9110 §13.1.1): whether the condition holds for a resource's entity tag."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

# One member of the list (RFC 9110 §8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE), with
# the optional whitespace and the comma around it (§5.6.1 lists; empty members are allowed).
_MEMBER: Final = re.compile(r'[ \t]*(?:(W/)?("[\x21\x23-\x7e\x80-\xff]*")[ \t]*)?(?:,|$)')


class MalformedEntityTags(ValueError):
    """The field is neither `*` nor a list of entity tags."""


def if_match_holds(field_lines: Sequence[str], current: str) -> bool:
    """Whether `If-Match` given as `field_lines` (each line of the field, in order) holds for
    a resource whose strong entity tag is `current` (quoted, as sent in `ETag`): `*`, or a
    listed tag equal to it by the strong comparison (a weak tag never matches, §8.8.3.2).

    Raises `MalformedEntityTags` when the field is neither `*` nor a list of entity tags.
    """
    joined = ",".join(field_lines)
    if joined.strip(" \t") == "*":
        return True
    tags: list[str] = []
    position = 0
    while position < len(joined):
        member = _MEMBER.match(joined, position)
        if member is None or member.end() == position:
            raise MalformedEntityTags("If-Match is neither * nor a list of entity tags")
        if member[2] is not None and member[1] is None:
            tags.append(member[2])
        position = member.end()
    return current in tags
