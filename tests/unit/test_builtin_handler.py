from datetime import UTC, datetime

from service.handoffs.builtin import compose_answer

NOW = datetime(2026, 11, 25, 16, 45, tzinfo=UTC)


def test_arithmetic_in_words_is_computed() -> None:
    assert compose_answer("what is 2 plus 3", NOW) == "The result is 2 + 3 = 5."


def test_arithmetic_with_symbols_and_parentheses_is_computed() -> None:
    assert compose_answer("compute (4 + 6) * 3 please", NOW) == "The result is (4 + 6) * 3 = 30."


def test_division_by_zero_is_not_an_answer() -> None:
    assert "= " not in compose_answer("what is 1 / 0", NOW)


def test_time_request_gets_the_utc_time() -> None:
    assert (
        compose_answer("what time is it", NOW) == "It is 16:45 UTC on Wednesday, 25 November 2026."
    )


def test_other_requests_are_acknowledged_with_their_text() -> None:
    assert "'book a table'" in compose_answer("book a table", NOW)


def test_code_is_never_evaluated() -> None:
    assert "= " not in compose_answer("__import__('os').system('true') + 1", NOW)


def test_spoken_number_words_are_computed() -> None:
    assert compose_answer("what is two plus three", NOW) == "The result is 2 + 3 = 5."


def test_compound_number_words_are_computed() -> None:
    assert compose_answer("forty-two minus twelve", NOW) == "The result is 42 - 12 = 30."


def test_unary_signs_and_precedence_follow_arithmetic() -> None:
    assert compose_answer("what is -2 * 3 + 10 / -5", NOW) == "The result is -2 * 3 + 10 / -5 = -8."


def test_a_sum_of_two_thousand_terms_is_answered() -> None:
    answer = compose_answer("what is " + "+".join(["1"] * 2000), NOW)
    assert answer.endswith("= 2000.")


def test_parentheses_nested_ten_thousand_deep_are_answered() -> None:
    answer = compose_answer("(" * 10_000 + "2+3" + ")" * 10_000, NOW)
    assert answer.endswith("= 5.")


def test_a_result_too_large_for_a_number_is_refused() -> None:
    assert "= " not in compose_answer("9" * 400 + " * " + "9" * 400, NOW)


def test_unbalanced_parentheses_are_not_an_answer() -> None:
    assert "= " not in compose_answer("((1 + 2)", NOW)
