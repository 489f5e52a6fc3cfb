"""A `cmd:` handler's stdout read as it comes: progress, the answer, and the caps on both."""

from __future__ import annotations

from service.handoffs.command_output import CommandOutput

CHUNK = 65536


def _read(chunks: list[bytes], max_text_bytes: int = 100) -> tuple[list[str], str]:
    """The progress and answer of an output written in `chunks` that has ended."""
    output = CommandOutput(max_text_bytes)
    for chunk in chunks:
        output.feed(chunk)
    output.end()
    return output.take_progress(), output.answer()


def test_answer_lines_are_joined_and_a_last_line_without_a_newline_counts() -> None:
    assert _read([b"one\n\ntwo\nthree"]) == ([], "one\n\ntwo\nthree")


def test_progress_lines_are_kept_apart_from_the_answer() -> None:
    assert _read([b"progress: half way\nforty-two\n"]) == (["half way"], "forty-two")


def test_output_split_anywhere_reads_the_same() -> None:
    written = b"progress: one\nthe\nprogress: two\nanswer\n"
    assert _read([bytes([byte]) for byte in written]) == _read([written])


def test_a_progress_line_longer_than_the_cap_is_cut_and_the_next_line_is_whole() -> None:
    long_line = b"progress: " + b"x" * (3 * CHUNK) + b"\nanswer\n"
    chunks = [long_line[i : i + CHUNK] for i in range(0, len(long_line), CHUNK)]
    assert _read(chunks, max_text_bytes=5) == (["xxxxxx"], "answer")


def test_progress_past_the_cap_in_all_is_dropped() -> None:
    assert _read([b"progress: 123456\n" * 3], max_text_bytes=10) == (["123456"] * 2, "")


def test_an_answer_past_the_cap_fills_the_output_and_is_cut_a_byte_past_it() -> None:
    output = CommandOutput(5)
    output.feed(b"abcdefgh\n")
    output.feed(b"progress: later\n")
    assert output.full
    assert (output.take_progress(), output.answer()) == ([], "abcdef")


def test_output_after_the_end_is_not_taken() -> None:
    output = CommandOutput(100)
    output.feed(b"answer")
    output.end()
    output.feed(b" and more\n")
    assert output.answer() == "answer"
