"""The transcript: text per item, conversation order, and what is new since a mark."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from signaling.realtime.transcript import Transcript, TranscriptEntry


def lines(transcript: Transcript) -> list[str]:
    return [f"{entry.role}: {entry.text}" for entry in transcript.snapshot()]


def test_deltas_accumulate_per_item() -> None:
    transcript = Transcript()
    transcript.apply_delta("u1", "user", "Hello ")
    transcript.apply_delta("a1", "assistant", "Hi")
    transcript.apply_delta("u1", "user", "there")
    assert transcript.snapshot() == (
        TranscriptEntry("u1", "user", "Hello there", final=False),
        TranscriptEntry("a1", "assistant", "Hi", final=False),
    )


def test_an_emoji_split_across_deltas_joins_intact() -> None:
    transcript = Transcript()
    # 👩‍👩‍👧 is woman, zero-width joiner, woman, zero-width joiner, girl.
    for piece in ["Family: \U0001f469", "\u200d\U0001f469", "\u200d", "\U0001f467!"]:
        transcript.apply_delta("a1", "assistant", piece)
    assert lines(transcript) == ["assistant: Family: 👩‍👩‍👧!"]


def test_a_combining_accent_split_from_its_letter_joins_intact() -> None:
    transcript = Transcript()
    transcript.apply_delta("u1", "user", "cafe")
    transcript.apply_delta("u1", "user", "\u0301 au lait")
    assert transcript.snapshot()[0].text == "cafe\u0301 au lait"


def test_final_text_replaces_the_deltas() -> None:
    transcript = Transcript()
    transcript.apply_delta("u1", "user", "what's the whether")
    assert transcript.apply_final("u1", "user", "What's the weather?")
    assert transcript.snapshot() == (
        TranscriptEntry("u1", "user", "What's the weather?", final=True),
    )


def test_a_repeated_final_changes_nothing() -> None:
    transcript = Transcript()
    transcript.apply_final("a1", "assistant", "Done.")
    assert not transcript.apply_final("a1", "assistant", "Done.")
    assert lines(transcript) == ["assistant: Done."]


def test_a_corrected_final_replaces_the_earlier_final() -> None:
    transcript = Transcript()
    transcript.apply_final("u1", "user", "Wreck a nice beach.")
    assert transcript.apply_final("u1", "user", "Recognize speech.")
    assert lines(transcript) == ["user: Recognize speech."]


def test_deltas_after_the_final_text_are_ignored() -> None:
    transcript = Transcript()
    transcript.apply_final("a1", "assistant", "Done.")
    assert not transcript.apply_delta("a1", "assistant", " Late.")
    assert lines(transcript) == ["assistant: Done."]


def test_an_empty_delta_changes_nothing() -> None:
    transcript = Transcript()
    assert not transcript.apply_delta("u1", "user", "")
    assert transcript.snapshot() == ()


def test_items_without_visible_text_are_left_out() -> None:
    transcript = Transcript()
    transcript.place("u1", None)
    transcript.apply_delta("u2", "user", "  ")
    transcript.apply_final("u3", "user", "")
    transcript.apply_delta("a1", "assistant", "Hi")
    assert lines(transcript) == ["assistant: Hi"]


def test_a_final_empty_text_removes_the_item() -> None:
    transcript = Transcript()
    transcript.apply_delta("u1", "user", "uh")
    transcript.apply_final("u1", "user", "")
    assert transcript.snapshot() == ()


def test_items_without_links_keep_their_order_of_first_appearance() -> None:
    transcript = Transcript()
    transcript.apply_delta("u1", "user", "one")
    transcript.apply_delta("a1", "assistant", "two")
    transcript.apply_delta("u1", "user", " more")
    transcript.apply_final("u2", "user", "three")
    assert lines(transcript) == ["user: one more", "assistant: two", "user: three"]


def test_a_late_user_transcript_stays_before_the_answer_it_prompted() -> None:
    transcript = Transcript()
    transcript.place("u1", "a0")
    transcript.place("a1", "u1")
    transcript.apply_delta("a1", "assistant", "It is sunny.")
    transcript.apply_final("u1", "user", "What's the weather?")
    assert lines(transcript) == ["user: What's the weather?", "assistant: It is sunny."]


def test_an_item_placed_after_another_comes_right_after_it_even_when_later() -> None:
    transcript = Transcript()
    transcript.place("u1", None)
    transcript.place("a1", "u1")
    transcript.place("u2", "a1")
    # Inserted after u1 once a1 and u2 already followed it.
    transcript.place("note", "u1")
    for item_id in ["u1", "a1", "u2", "note"]:
        transcript.apply_final(item_id, "user", item_id)
    assert [entry.item_id for entry in transcript.snapshot()] == ["u1", "note", "a1", "u2"]


def test_an_item_can_be_placed_before_its_predecessor_is_seen() -> None:
    transcript = Transcript()
    transcript.apply_delta("x", "assistant", "unrelated")
    transcript.place("a1", "u1")
    transcript.apply_delta("a1", "assistant", "answer")
    transcript.apply_delta("u1", "user", "question")
    assert lines(transcript) == ["assistant: unrelated", "user: question", "assistant: answer"]


def test_a_placed_item_moves_with_the_items_that_follow_it() -> None:
    transcript = Transcript()
    transcript.apply_delta("a0", "assistant", "first")
    transcript.apply_delta("u1", "user", "second")
    transcript.place("a1", "u1")
    transcript.apply_delta("a1", "assistant", "third")
    transcript.place("u1", None)
    assert lines(transcript) == ["user: second", "assistant: third", "assistant: first"]


def test_a_missing_previous_item_does_not_move_a_placed_item() -> None:
    transcript = Transcript()
    transcript.place("u1", None)
    transcript.place("a1", "u1")
    transcript.place("a1", None)
    transcript.apply_final("a1", "assistant", "answer")
    transcript.apply_final("u1", "user", "question")
    assert lines(transcript) == ["user: question", "assistant: answer"]


def test_repeating_a_placement_keeps_the_order() -> None:
    transcript = Transcript()
    transcript.place("a1", "u1")
    transcript.place("fc", "u1")
    transcript.place("a1", "u1")
    transcript.apply_final("u1", "user", "q")
    transcript.apply_final("a1", "assistant", "a")
    transcript.apply_final("fc", "assistant", "f")
    assert [entry.item_id for entry in transcript.snapshot()] == ["u1", "fc", "a1"]


def test_an_item_placed_after_itself_is_not_lost() -> None:
    transcript = Transcript()
    transcript.apply_delta("a1", "assistant", "hi")
    transcript.place("a1", "a1")
    assert lines(transcript) == ["assistant: hi"]


def test_items_linked_in_a_cycle_are_not_lost() -> None:
    transcript = Transcript()
    transcript.apply_delta("u1", "user", "one")
    transcript.apply_delta("a1", "assistant", "two")
    transcript.place("a1", "u1")
    transcript.place("u1", "a1")
    assert sorted(lines(transcript)) == ["assistant: two", "user: one"]


def test_since_a_mark_holds_items_that_gained_text_afterwards() -> None:
    transcript = Transcript()
    transcript.apply_final("u1", "user", "first question")
    mark = transcript.mark()
    transcript.apply_final("u2", "user", "second question")
    assert transcript.since(mark) == (TranscriptEntry("u2", "user", "second question", final=True),)


def test_since_a_mark_leaves_out_items_that_already_had_text() -> None:
    transcript = Transcript()
    transcript.apply_delta("a1", "assistant", "Working")
    mark = transcript.mark()
    transcript.apply_delta("a1", "assistant", " on it.")
    assert transcript.since(mark) == ()


def test_since_a_mark_keeps_conversation_order_for_late_text() -> None:
    transcript = Transcript()
    transcript.place("u1", None)
    transcript.place("a1", "u1")
    transcript.apply_final("a1", "assistant", "Sure.")
    mark = transcript.mark()
    transcript.place("u2", "a1")
    transcript.place("a2", "u2")
    transcript.apply_final("a2", "assistant", "Done.")
    transcript.apply_final("u1", "user", "Can you help?")
    transcript.apply_final("u2", "user", "Deploy it.")
    assert [entry.item_id for entry in transcript.since(mark)] == ["u1", "u2", "a2"]


def test_a_mark_taken_at_the_start_covers_everything() -> None:
    transcript = Transcript()
    mark = transcript.mark()
    transcript.apply_final("u1", "user", "hello")
    assert transcript.since(mark) == transcript.snapshot()


def test_reading_between_deltas_keeps_the_full_text() -> None:
    transcript = Transcript()
    for index in range(1000):
        transcript.apply_delta("a1", "assistant", f"{index} ")
        if index % 100 == 0:
            transcript.snapshot()
    assert transcript.snapshot()[0].text == "".join(f"{index} " for index in range(1000))


ITEM_IDS = st.sampled_from(["a", "b", "c", "d", "e"])
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("delta"), ITEM_IDS, st.text(max_size=3)),
        st.tuples(st.just("final"), ITEM_IDS, st.text(max_size=3)),
        st.tuples(st.just("place"), ITEM_IDS, st.none() | ITEM_IDS),
    ),
    max_size=30,
)


@given(OPERATIONS)
def test_every_item_with_text_appears_exactly_once_whatever_the_links(
    operations: list[tuple[str, str, str | None]],
) -> None:
    transcript = Transcript()
    expected: dict[str, str] = {}
    finished: set[str] = set()
    for operation, item_id, argument in operations:
        if operation == "place":
            transcript.place(item_id, argument)
        elif operation == "delta":
            transcript.apply_delta(item_id, "user", argument or "")
            if item_id not in finished:
                expected[item_id] = expected.get(item_id, "") + (argument or "")
        else:
            transcript.apply_final(item_id, "user", argument or "")
            expected[item_id] = argument or ""
            finished.add(item_id)
    snapshot = transcript.snapshot()
    assert len({entry.item_id for entry in snapshot}) == len(snapshot)
    assert {entry.item_id: entry.text for entry in snapshot} == {
        item_id: text for item_id, text in expected.items() if text.strip()
    }
