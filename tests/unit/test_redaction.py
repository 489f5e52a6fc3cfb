"""One redaction for all provider text."""

import base64

from signaling.redaction import REDACTED, redact, redact_head, too_short


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


KEY = "sk-proj-Q7xR2mN9vL4kT8wZ1cY6bH3j"


def test_a_percent_encoded_secret_is_replaced() -> None:
    encoded = "".join(c if c.isalnum() else f"%{ord(c):02x}" for c in KEY)
    assert redact(f"key={encoded}&x=1", [KEY]) == f"key={REDACTED}&x=1"


def test_a_secret_with_unicode_hyphens_is_replaced() -> None:
    hyphenated = KEY.replace("-", "\u2010")
    assert redact(f"key {hyphenated}.", [KEY]) == f"key {REDACTED}."


def test_a_json_escaped_secret_is_replaced() -> None:
    escaped = "".join(f"\\u{ord(c):04X}" for c in KEY)
    assert redact(f'{{"key": "{escaped}"}}', [KEY]) == f'{{"key": "{REDACTED}"}}'


def test_a_base64_encoded_secret_is_replaced_whatever_precedes_it() -> None:
    for user in ("", "u", "us"):
        encoded = base64.b64encode(f"{user}:{KEY}".encode()).decode()
        # What is left: the few characters that mix the secret's bytes with its neighbours'.
        head, redacted, tail = redact(encoded, [KEY]).partition(REDACTED)
        assert redacted
        assert len(head) <= 4
        assert len(tail) <= 4


def test_a_secret_whose_public_prefix_is_mangled_is_still_replaced() -> None:
    body = KEY.removeprefix("sk-proj-")
    assert redact(f"key SK_PROJ_{body}", [KEY]) == f"key SK_PROJ_{REDACTED}"


def test_a_secret_too_short_to_redact_leaves_text_alone() -> None:
    assert too_short("k")
    assert too_short("sk-proj-abc")
    assert not too_short(KEY)
    assert redact("kick the kettle", ["k"]) == "kick the kettle"


def test_a_jwt_is_replaced_even_when_not_configured() -> None:
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyMTIzIn0.c2lnbmF0dXJlX2hlcmU"
    assert redact(f"token {jwt} refused") == f"token {REDACTED} refused"


def test_a_secret_written_as_html_character_references_is_replaced() -> None:
    decimal = "".join(f"&#{ord(c)};" for c in KEY)
    hexadecimal = "".join(f"&#x{ord(c):X};" for c in KEY)
    assert redact(f"<p>{decimal}</p><p>{hexadecimal}</p>", [KEY]) == (
        f"<p>{REDACTED}</p><p>{REDACTED}</p>"
    )


def test_a_hex_key_is_replaced_in_either_case() -> None:
    azure_key = "0123456789abcdef0123456789abcdef"
    assert redact(f"api-key {azure_key.upper()} refused", [azure_key]) == (
        f"api-key {REDACTED} refused"
    )


def test_a_secret_straddling_the_cut_is_redacted_before_the_text_is_cut() -> None:
    secret = "3f9a1c7e5b2d4a6f8e0c1b3d5f7a9c2e"
    text = "E" * 90 + secret
    head = redact_head(text, 100, [secret])
    assert head == "E" * 90 + REDACTED[:10]
