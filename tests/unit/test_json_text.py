"""The JSON text we send the provider: compact UTF-8, whatever the strings hold."""

from __future__ import annotations

import json

from signaling.json_text import json_bytes


def test_json_is_compact_utf8() -> None:
    assert json_bytes({"instructions": "Grüß dich", "n": [1, 2.5, None, True]}) == (
        '{"instructions":"Grüß dich","n":[1,2.5,null,true]}'.encode()
    )


def test_a_lone_surrogate_is_written_as_a_json_escape() -> None:
    text = json_bytes({"instructions": "a\ud800b"})
    assert text == b'{"instructions":"a\\ud800b"}'
    assert json.loads(text) == {"instructions": "a\ud800b"}


def test_an_integer_past_64_bits_is_written_whole() -> None:
    assert json.loads(json_bytes({"n": 2**70})) == {"n": 2**70}
