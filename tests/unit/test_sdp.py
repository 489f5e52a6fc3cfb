"""`check_offer`: which SDP offers are passed to the provider, and why the others are refused."""

from __future__ import annotations

import string
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signaling.sdp import MAX_OFFER_BYTES, OfferError, OfferErrorKind, check_offer
from tests.unit.sdp_samples import AIORTC_OFFER, CHROME_OFFER, FIREFOX_MAX_BUNDLE

FINGERPRINT = "a=fingerprint:sha-256 " + ":".join(["AB"] * 32)
TRANSPORT = (
    "a=ice-ufrag:abcd",
    "a=ice-pwd:abcdefghijklmnopqrstuv",
    FINGERPRINT,
    "a=setup:actpass",
)
SESSION = ("v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0")
AUDIO = ("m=audio 9 UDP/TLS/RTP/SAVPF 111", "c=IN IP4 0.0.0.0", *TRANSPORT)
DATA = ("m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "c=IN IP4 0.0.0.0", *TRANSPORT)


def sdp(*lines: str) -> str:
    """An offer made of `lines`, each ended with CRLF."""
    return "".join(f"{line}\r\n" for line in lines)


def minimal(*, replace: str | None = None, by: str | None = None) -> str:
    """The smallest acceptable offer (audio plus data), with the line `replace` swapped for `by`.

    `by=None` drops the line. Only the first occurrence (in the audio section) is touched.
    """
    lines = [*SESSION, *AUDIO, *DATA]
    if replace is not None:
        index = lines.index(replace)
        if by is None:
            del lines[index]
        else:
            lines[index] = by
    return sdp(*lines)


def rejection(offer: str | bytes) -> OfferError:
    with pytest.raises(OfferError) as caught:
        check_offer(offer)
    return caught.value


def test_chrome_offer_is_accepted_unchanged() -> None:
    assert check_offer(CHROME_OFFER) == CHROME_OFFER


def test_aiortc_offer_is_accepted_unchanged() -> None:
    assert check_offer(AIORTC_OFFER) == AIORTC_OFFER


def test_minimal_offer_is_accepted() -> None:
    assert check_offer(minimal()) == minimal()


def test_bytes_offer_is_returned_as_its_text() -> None:
    assert check_offer(CHROME_OFFER.encode()) == CHROME_OFFER


def test_lf_line_endings_are_accepted() -> None:
    offer = minimal().replace("\r\n", "\n")
    assert check_offer(offer) == offer


def test_last_line_without_a_terminator_is_accepted() -> None:
    offer = minimal().removesuffix("\r\n")
    assert check_offer(offer) == offer


def test_utf8_session_name_and_tab_are_accepted() -> None:
    offer = minimal(replace="s=-", by="s=Caf\u00e9\tcall \U0001f4de")
    assert check_offer(offer.encode()) == offer


def test_media_port_with_a_count_is_accepted() -> None:
    offer = minimal(replace=AUDIO[0], by="m=audio 9/2 UDP/TLS/RTP/SAVPF 111")
    assert check_offer(offer) == offer


def test_transport_attributes_at_session_level_serve_every_section() -> None:
    offer = sdp(*SESSION, *TRANSPORT, AUDIO[0], DATA[0])
    assert check_offer(offer) == offer


def test_port_zero_section_needs_no_transport_attributes() -> None:
    offer = sdp(*SESSION, *AUDIO, "m=video 0 UDP/TLS/RTP/SAVPF 96", "a=bundle-only")
    assert check_offer(offer) == offer


@pytest.mark.parametrize("role", ["actpass", "active", "passive", "holdconn"])
def test_every_setup_role_is_accepted(role: str) -> None:
    offer = minimal(replace="a=setup:actpass", by=f"a=setup:{role}")
    assert check_offer(offer) == offer


@pytest.mark.parametrize("ufrag", ["a+/9", "x" * 256])
def test_ice_ufrag_of_4_to_256_ice_chars_is_accepted(ufrag: str) -> None:
    offer = minimal(replace="a=ice-ufrag:abcd", by=f"a=ice-ufrag:{ufrag}")
    assert check_offer(offer) == offer


@pytest.mark.parametrize("pwd", ["A" * 20 + "+/", "p" * 256])
def test_ice_pwd_of_22_to_256_ice_chars_is_accepted(pwd: str) -> None:
    offer = minimal(replace="a=ice-pwd:abcdefghijklmnopqrstuv", by=f"a=ice-pwd:{pwd}")
    assert check_offer(offer) == offer


def test_lowercase_fingerprint_hex_is_accepted() -> None:
    offer = minimal(replace=FINGERPRINT, by=FINGERPRINT.lower())
    assert check_offer(offer) == offer


def test_fingerprint_of_an_unlisted_hash_function_may_have_any_length() -> None:
    offer = minimal(replace=FINGERPRINT, by="a=fingerprint:sha3-256 01:02:03")
    assert check_offer(offer) == offer


def test_offer_of_exactly_the_size_limit_is_accepted() -> None:
    base = minimal()
    padding = MAX_OFFER_BYTES - len(base) - len("a=x:\r\n")
    offer = base + f"a=x:{'p' * padding}\r\n"
    assert len(offer.encode()) == MAX_OFFER_BYTES
    assert check_offer(offer) == offer


def test_bytes_that_are_not_utf8_are_not_text() -> None:
    offer = minimal().encode().replace(b"s=-", b"s=\xff")
    error = rejection(offer)
    assert error.kind is OfferErrorKind.NOT_TEXT
    assert error.reason == f"offer is not UTF-8: invalid byte at byte offset {offer.index(0xFF)}"


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x0b", "\x1b", "\x7f", "\x85"])
def test_control_characters_other_than_cr_lf_tab_are_not_text(char: str) -> None:
    error = rejection(minimal(replace="s=-", by=f"s=a{char}b"))
    assert error.kind is OfferErrorKind.NOT_TEXT
    assert f"U+{ord(char):04X}" in error.reason


def test_nul_in_bytes_is_not_text() -> None:
    assert rejection(minimal().encode() + b"\x00").kind is OfferErrorKind.NOT_TEXT


def test_lone_surrogate_in_a_str_is_not_text() -> None:
    error = rejection(minimal(replace="s=-", by="s=\ud800"))
    assert error.kind is OfferErrorKind.NOT_TEXT
    assert "U+D800" in error.reason


@pytest.mark.parametrize("offer", ["", b"", " ", "\r\n\r\n", b"\t \n"])
def test_empty_or_blank_offer_is_not_text(offer: str | bytes) -> None:
    error = rejection(offer)
    assert error.kind is OfferErrorKind.NOT_TEXT
    assert error.reason == "empty offer"


def test_bytes_over_the_limit_are_too_large() -> None:
    error = rejection(b"v" * (MAX_OFFER_BYTES + 1))
    assert error.kind is OfferErrorKind.TOO_LARGE
    assert error.reason == f"offer is {MAX_OFFER_BYTES + 1} bytes, over the limit of 65536 bytes"


def test_str_is_measured_in_utf8_bytes_not_characters() -> None:
    offer = "\u00e9" * (MAX_OFFER_BYTES // 2 + 1)
    assert rejection(offer).kind is OfferErrorKind.TOO_LARGE


def test_size_is_checked_before_decoding() -> None:
    assert rejection(b"\xff" * (MAX_OFFER_BYTES + 1)).kind is OfferErrorKind.TOO_LARGE


def assert_malformed(offer: str, reason: str) -> None:
    error = rejection(offer)
    assert error.kind is OfferErrorKind.MALFORMED
    assert error.reason == reason


def test_line_without_equals_sign_is_malformed_with_its_number() -> None:
    assert_malformed(
        minimal(replace="t=0 0", by="t 0 0"),
        "line 4 is malformed: expected '<type>=<value>' with a lowercase letter type, got 't 0 0'",
    )


def test_uppercase_type_letter_is_malformed() -> None:
    assert_malformed(
        minimal(replace="t=0 0", by="T=0 0"),
        "line 4 is malformed: expected '<type>=<value>' with a lowercase letter type, got 'T=0 0'",
    )


def test_line_with_an_empty_value_is_malformed() -> None:
    assert_malformed(
        minimal(replace="t=0 0", by="t="),
        "line 4 is malformed: expected '<type>=<value>' with a lowercase letter type, got 't='",
    )


def test_unknown_type_letter_is_malformed() -> None:
    assert_malformed(
        minimal(replace="t=0 0", by="x=0 0"), "line 4 is malformed: unknown line type 'x='"
    )


def test_empty_line_before_the_end_is_malformed() -> None:
    assert_malformed(minimal(replace="t=0 0", by=""), "line 4 is malformed: empty line")


def test_second_trailing_line_break_is_an_empty_line() -> None:
    lines = len([*SESSION, *AUDIO, *DATA])
    assert_malformed(minimal() + "\r\n", f"line {lines + 1} is malformed: empty line")


def test_bare_cr_inside_a_line_is_malformed() -> None:
    assert_malformed(
        minimal(replace="s=-", by="s=a\rb"),
        "line 3 is malformed: CR that does not end the line",
    )


def test_first_line_other_than_v0_is_malformed() -> None:
    assert_malformed(
        minimal(replace="v=0", by="v=1"),
        "line 1 is malformed: the first line must be 'v=0', not 'v=1'",
    )


def test_offer_without_origin_line_is_malformed() -> None:
    assert_malformed(
        minimal(replace=SESSION[1], by=None), "offer has no o= line before its first m= line"
    )


def test_offer_without_session_name_is_malformed() -> None:
    assert_malformed(
        minimal(replace="s=-", by=None), "offer has no s= line before its first m= line"
    )


def test_origin_line_inside_a_media_section_does_not_count() -> None:
    offer = sdp("v=0", "s=-", *AUDIO, SESSION[1])
    assert_malformed(offer, "offer has no o= line before its first m= line")


@pytest.mark.parametrize(
    "m_line",
    [
        "m=audio",
        "m=audio 9",
        "m=audio 9 UDP/TLS/RTP/SAVPF",
        "m=audio nine UDP/TLS/RTP/SAVPF 111",
        "m=audio -9 UDP/TLS/RTP/SAVPF 111",
        "m=audio 9/ UDP/TLS/RTP/SAVPF 111",
        "m=audio  9 UDP/TLS/RTP/SAVPF 111",
        "m=audio 9 UDP//SAVPF 111",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 ",
        "m=audio 123456 UDP/TLS/RTP/SAVPF 111",
    ],
)
def test_m_line_not_of_the_form_media_port_proto_fmt_is_malformed(m_line: str) -> None:
    assert_malformed(
        minimal(replace=AUDIO[0], by=m_line),
        f"line 5 is malformed: expected 'm=<media> <port> <proto> <fmt> ...', got {m_line!r}",
    )


def test_m_line_port_too_long_to_convert_is_malformed() -> None:
    error = rejection(minimal(replace=AUDIO[0], by=f"m=audio {'9' * 5000} RTP/AVP 0"))
    assert error.kind is OfferErrorKind.MALFORMED
    assert error.reason.startswith("line 5 is malformed: expected 'm=<media> <port>")


def test_m_line_port_above_65535_is_malformed() -> None:
    assert_malformed(
        minimal(replace=AUDIO[0], by="m=audio 65536 UDP/TLS/RTP/SAVPF 111"),
        "line 5 is malformed: m= port 65536 is out of range",
    )


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("a=ice-ufrag:abc", "a=ice-ufrag must be 4 to 256 characters long, got 3"),
        ("a=ice-ufrag:" + "u" * 257, "a=ice-ufrag must be 4 to 256 characters long, got 257"),
        ("a=ice-ufrag:ab-d", "a=ice-ufrag may only contain [A-Za-z0-9+/]"),
        ("a=ice-ufrag:", "a=ice-ufrag must be 4 to 256 characters long, got 0"),
        ("a=ice-ufrag", "a=ice-ufrag has no value"),
    ],
)
def test_malformed_ice_ufrag_is_malformed(line: str, problem: str) -> None:
    assert_malformed(
        minimal(replace="a=ice-ufrag:abcd", by=line), f"line 7 is malformed: {problem}"
    )


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("a=ice-pwd:" + "p" * 21, "a=ice-pwd must be 22 to 256 characters long, got 21"),
        ("a=ice-pwd:" + "p" * 257, "a=ice-pwd must be 22 to 256 characters long, got 257"),
        ("a=ice-pwd:" + "p" * 21 + "=", "a=ice-pwd may only contain [A-Za-z0-9+/]"),
        ("a=ice-pwd", "a=ice-pwd has no value"),
    ],
)
def test_malformed_ice_pwd_is_malformed(line: str, problem: str) -> None:
    assert_malformed(
        minimal(replace="a=ice-pwd:abcdefghijklmnopqrstuv", by=line),
        f"line 8 is malformed: {problem}",
    )


def test_malformed_ice_pwd_is_not_echoed_in_the_reason() -> None:
    secret = "S3cretS3cretS3cretS3cret!"
    error = rejection(minimal(replace="a=ice-pwd:abcdefghijklmnopqrstuv", by=f"a=ice-pwd:{secret}"))
    assert secret not in error.reason


@pytest.mark.parametrize(
    "value",
    [
        "",
        "sha-256",
        ":".join(["AB"] * 32),
        "sha-256 " + "-".join(["AB"] * 32),
        "sha-256 " + ":".join(["AB"] * 31) + ":A",
        "sha-256 " + ":".join(["AB"] * 31) + ":GG",
        "sha-256  " + ":".join(["AB"] * 32),
        "sha-256 " + ":".join(["AB"] * 32) + ":",
        "sha-256 " + ":" * 95,
        "sha-256 AB::CD:EF",
        "sha-256 ABC:D",
    ],
)
def test_fingerprint_not_of_the_form_hash_hex_pairs_is_malformed(value: str) -> None:
    error = rejection(minimal(replace=FINGERPRINT, by=f"a=fingerprint:{value}"))
    assert error.kind is OfferErrorKind.MALFORMED
    assert error.reason.startswith(
        "line 9 is malformed: a=fingerprint must be '<hash-function> <hex pairs separated by ':'>'"
    )


@pytest.mark.parametrize(("hash_function", "size"), [("sha-256", 31), ("SHA-1", 32)])
def test_fingerprint_of_the_wrong_length_for_its_hash_is_malformed(
    hash_function: str, size: int
) -> None:
    line = f"a=fingerprint:{hash_function} " + ":".join(["0F"] * size)
    error = rejection(minimal(replace=FINGERPRINT, by=line))
    assert error.kind is OfferErrorKind.MALFORMED
    assert error.reason.startswith(f"line 9 is malformed: a=fingerprint {hash_function.lower()}")
    assert error.reason.endswith(f"bytes, got {size}")


@pytest.mark.parametrize("role", ["ACTPASS", "passive ", "server", ""])
def test_unknown_setup_role_is_malformed(role: str) -> None:
    assert_malformed(
        minimal(replace="a=setup:actpass", by=f"a=setup:{role}"),
        "line 10 is malformed: a=setup must be one of actpass, active, passive, holdconn,"
        f" got {role!r}",
    )


def test_malformed_attribute_at_session_level_is_malformed() -> None:
    offer = sdp(*SESSION, "a=setup:bogus", *AUDIO)
    assert rejection(offer).kind is OfferErrorKind.MALFORMED


def test_malformed_attribute_in_an_unchecked_section_still_rejects_the_offer() -> None:
    offer = sdp(*SESSION, *AUDIO, "m=video 0 UDP/TLS/RTP/SAVPF 96", "a=ice-ufrag:x")
    assert rejection(offer).kind is OfferErrorKind.MALFORMED


def assert_unacceptable(offer: str, reason: str) -> None:
    error = rejection(offer)
    assert error.kind is OfferErrorKind.UNACCEPTABLE
    assert error.reason == reason


def test_offer_without_audio_is_unacceptable() -> None:
    assert_unacceptable(sdp(*SESSION, *DATA), "offer has no audio m-line")


def test_audio_section_with_port_zero_does_not_count_as_audio() -> None:
    assert_unacceptable(
        sdp(*SESSION, "m=audio 0 UDP/TLS/RTP/SAVPF 111", *DATA),
        "offer has no audio m-line (only rejected ones, with port 0)",
    )


@pytest.mark.parametrize("attribute", ["ice-ufrag", "ice-pwd", "fingerprint", "setup"])
def test_section_without_a_transport_attribute_is_unacceptable(attribute: str) -> None:
    data = [line for line in DATA if not line.startswith(f"a={attribute}:")]
    assert_unacceptable(
        sdp(*SESSION, *AUDIO, *data),
        f"media section 2 (application, line 11) has no a={attribute}",
    )


def test_every_missing_transport_attribute_is_named() -> None:
    assert_unacceptable(
        sdp(*SESSION, "m=audio 9 UDP/TLS/RTP/SAVPF 111"),
        "media section 1 (audio, line 5) has no a=ice-ufrag, a=ice-pwd, a=fingerprint, a=setup",
    )


def test_transport_attributes_of_another_section_do_not_count() -> None:
    offer = sdp(*SESSION, DATA[0], *AUDIO)
    assert_unacceptable(
        offer,
        "media section 1 (application, line 5) has no a=ice-ufrag, a=ice-pwd, a=fingerprint,"
        " a=setup",
    )


def test_offer_error_is_a_value_error_whose_message_is_the_reason() -> None:
    error = rejection(sdp(*SESSION, *DATA))
    assert isinstance(error, ValueError)
    assert str(error) == error.reason


_ICE_CHARS = string.ascii_letters + string.digits + "+/"
_DIGEST_BYTES = {"sha-1": 20, "sha-256": 32, "sha-384": 48, "sha-512": 64}
_TEXT_CHARS = st.characters(blacklist_categories=("Cc", "Cs"))


@st.composite
def _transport(draw: st.DrawFn) -> list[str]:
    hash_function = draw(st.sampled_from(sorted(_DIGEST_BYTES)))
    size = _DIGEST_BYTES[hash_function]
    hex_pairs = ":".join(f"{byte:02X}" for byte in draw(st.binary(min_size=size, max_size=size)))
    return [
        f"a=ice-ufrag:{draw(st.text(alphabet=_ICE_CHARS, min_size=4, max_size=256))}",
        f"a=ice-pwd:{draw(st.text(alphabet=_ICE_CHARS, min_size=22, max_size=256))}",
        f"a=fingerprint:{draw(st.sampled_from([hash_function, hash_function.upper()]))}"
        f" {hex_pairs}",
        f"a=setup:{draw(st.sampled_from(['actpass', 'active', 'passive', 'holdconn']))}",
    ]


_OTHER_ATTRIBUTES = st.lists(
    st.from_regex(r"a=[a-z][a-z0-9-]{0,15}(:[ -~]{1,30})?", fullmatch=True).filter(
        lambda line: (
            line[2:].partition(":")[0] not in {"ice-ufrag", "ice-pwd", "fingerprint", "setup"}
        )
    ),
    max_size=4,
)


@st.composite
def _media_section(draw: st.DrawFn, media: str, transport: list[str]) -> list[str]:
    port = draw(st.integers(min_value=1, max_value=65535))
    proto = draw(st.sampled_from(["UDP/TLS/RTP/SAVPF", "UDP/DTLS/SCTP", "RTP/AVP"]))
    formats = draw(st.lists(st.integers(min_value=0, max_value=127), min_size=1, max_size=5))
    return [
        f"m={media} {port} {proto} {' '.join(map(str, formats))}",
        *draw(st.lists(st.just("c=IN IP4 0.0.0.0"), max_size=1)),
        *transport,
        *draw(_OTHER_ATTRIBUTES),
    ]


@st.composite
def _valid_offer_lines(draw: st.DrawFn) -> list[str]:
    session_level = draw(st.booleans())
    session_transport = draw(_transport()) if session_level else []
    lines = [
        "v=0",
        f"o=- {draw(st.integers(min_value=0, max_value=2**63))} 2 IN IP4 127.0.0.1",
        f"s={draw(st.text(alphabet=_TEXT_CHARS, min_size=1, max_size=20))}",
        "t=0 0",
        *session_transport,
        *draw(_OTHER_ATTRIBUTES),
    ]
    kinds = draw(st.lists(st.sampled_from(["video", "application", "audio"]), max_size=3))
    kinds.insert(draw(st.integers(min_value=0, max_value=len(kinds))), "audio")
    for kind in kinds:
        transport = [] if session_level else draw(_transport())
        lines += draw(_media_section(kind, transport))
    return lines


def _joined(lines: list[str], newline: str, terminated: bool) -> str:
    return newline.join(lines) + (newline if terminated else "")


@given(_valid_offer_lines(), st.sampled_from(["\r\n", "\n"]), st.booleans())
def test_generated_valid_offers_are_accepted(
    lines: list[str], newline: str, terminated: bool
) -> None:
    offer = _joined(lines, newline, terminated)
    assert check_offer(offer) == offer
    assert check_offer(offer.encode()) == offer


def _drop_equals(line: str, _: int) -> str:
    return f"{line[0]}:{line[2:]}"


def _uppercase_type(line: str, _: int) -> str:
    return line[0].upper() + line[1:]


def _unknown_type(line: str, _: int) -> str:
    return "x" + line[1:]


def _leading_space(line: str, _: int) -> str:
    return " " + line


def _control_char(line: str, position: int) -> str:
    cut = position % (len(line) + 1)
    return f"{line[:cut]}\x01{line[cut:]}"


@given(
    _valid_offer_lines(),
    st.integers(min_value=0),
    st.sampled_from([_drop_equals, _uppercase_type, _unknown_type, _leading_space, _control_char]),
    st.integers(min_value=0),
)
def test_valid_offer_with_one_line_corrupted_is_rejected(
    lines: list[str], index: int, corrupt: Callable[[str, int], str], position: int
) -> None:
    target = index % len(lines)
    lines[target] = corrupt(lines[target], position)
    offer = _joined(lines, "\r\n", True)
    error = rejection(offer)
    assert error.kind in {OfferErrorKind.MALFORMED, OfferErrorKind.NOT_TEXT}


_SDPISH_LINES = st.one_of(
    st.sampled_from(
        [*SESSION, *AUDIO, *DATA, "m=audio 0 RTP/AVP 0", "a=setup:", "a=fingerprint:x"]
    ),
    st.text(max_size=40),
)


@given(
    st.one_of(
        st.text(),
        st.binary(),
        st.lists(_SDPISH_LINES, max_size=20).map("\r\n".join),
        st.lists(_SDPISH_LINES, max_size=20).map(lambda lines: "\n".join(lines).encode()),
    )
)
def test_arbitrary_input_is_accepted_unchanged_or_refused_with_an_offer_error(
    offer: str | bytes,
) -> None:
    try:
        text = check_offer(offer)
    except OfferError:
        return
    assert text == (offer.decode() if isinstance(offer, bytes) else offer)


def test_bundle_only_audio_with_port_zero_in_the_bundle_group_is_live() -> None:
    assert check_offer(FIREFOX_MAX_BUNDLE) == FIREFOX_MAX_BUNDLE


def test_bundle_only_audio_whose_mid_is_outside_the_bundle_group_is_rejected() -> None:
    offer = FIREFOX_MAX_BUNDLE.replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 0")
    assert_unacceptable(offer, "offer has no audio m-line (only rejected ones, with port 0)")


def test_port_zero_audio_without_bundle_only_is_rejected_even_in_the_bundle_group() -> None:
    offer = FIREFOX_MAX_BUNDLE.replace("a=bundle-only\r\n", "")
    assert_unacceptable(offer, "offer has no audio m-line (only rejected ones, with port 0)")


def test_an_empty_group_attribute_is_not_a_bundle_group() -> None:
    offer = FIREFOX_MAX_BUNDLE.replace("a=group:BUNDLE 0 1", "a=group:")
    assert_unacceptable(offer, "offer has no audio m-line (only rejected ones, with port 0)")
