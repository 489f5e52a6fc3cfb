"""One redaction for all provider text."""

from signaling.redaction import REDACTED, redact


def test_configured_secrets_are_replaced() -> None:
    assert redact("key=abc123secret!", ["abc123secret"]) == f"key={REDACTED}!"


def test_key_shaped_strings_are_replaced_even_when_not_configured() -> None:
    text = "Incorrect API key provided: sk-proj-AbCdEf0123456789. Bearer eyJhbGciOi.xyz"
    cleaned = redact(text)
    assert "sk-proj" not in cleaned
    assert "eyJhbGciOi" not in cleaned


def test_ordinary_text_is_left_alone() -> None:
    text = "Conversation already has an active response in progress: resp_1."
    assert redact(text, ["", "unrelated"]) == text
