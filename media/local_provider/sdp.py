"""Offer sanity checks and the fake SDP answer of the no-media mode."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

_MEDIA_LINE = re.compile(r"^m=(\w+) \S+ (\S+)(?: (.*))?$")
_OPUS = re.compile(r"^a=rtpmap:(\d+) opus/48000", re.IGNORECASE)


@dataclass(frozen=True)
class _MediaSection:
    kind: str
    protocol: str
    formats: list[str]
    mid: str | None
    opus_payload_type: str | None


def offer_problem(offer: str) -> str | None:
    """Why `offer` is not a usable SDP offer for a voice call, or None.

    aiortc accepts nearly any text as an offer, so the provider checks the basics itself.
    """
    lines = offer.splitlines()
    if not lines or lines[0].strip() != "v=0":
        return "The SDP offer must start with 'v=0'."
    if not any(section.kind == "audio" for section in _media_sections(offer)):
        return "The SDP offer has no audio media section."
    return None


def fake_answer(offer: str) -> str:
    """A syntactically valid answer to `offer` that no peer stands behind.

    It mirrors the offer's media sections and mids (as an answer must) so WebRTC stacks accept
    it; connectivity checks against it simply never succeed.
    """
    sections = _media_sections(offer)
    mids = [section.mid for section in sections if section.mid is not None]
    fingerprint = ":".join(f"{byte:02X}" for byte in secrets.token_bytes(32))
    transport = [
        "c=IN IP4 127.0.0.1",
        f"a=ice-ufrag:{secrets.token_hex(4)}",
        f"a=ice-pwd:{secrets.token_hex(12)}",
        f"a=fingerprint:sha-256 {fingerprint}",
        "a=setup:active",
    ]
    lines = [
        "v=0",
        f"o=- {secrets.randbelow(2**62)} 1 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
    ]
    if mids:
        lines.append("a=group:BUNDLE " + " ".join(mids))
    for section in sections:
        lines += _answer_section(section, transport)
    return "\r\n".join(lines) + "\r\n"


def _answer_section(section: _MediaSection, transport: list[str]) -> list[str]:
    mid = [f"a=mid:{section.mid}"] if section.mid is not None else []
    if section.kind == "audio" and section.opus_payload_type is not None:
        pt = section.opus_payload_type
        return [
            f"m=audio 9 {section.protocol} {pt}",
            *transport,
            *mid,
            "a=sendrecv",
            "a=rtcp-mux",
            f"a=rtpmap:{pt} opus/48000/2",
            "a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host",
            "a=end-of-candidates",
        ]
    if section.kind == "application":
        return [
            f"m=application 9 {section.protocol} webrtc-datachannel",
            *transport,
            *mid,
            "a=sctp-port:5000",
            "a=max-message-size:262144",
        ]
    # Anything else (video, or audio without Opus) is declined with port 0.
    declined = section.formats[0] if section.formats else "0"
    return [f"m={section.kind} 0 {section.protocol} {declined}", *transport, *mid, "a=rtcp-mux"]


def _media_sections(sdp: str) -> list[_MediaSection]:
    sections: list[_MediaSection] = []
    # The text before the first m= line is the session level; every later block is a section.
    for block in re.split(r"^(?=m=)", sdp, flags=re.MULTILINE)[1:]:
        lines = [line.strip() for line in block.splitlines()]
        media = _MEDIA_LINE.match(lines[0])
        if media is None:
            continue
        mid = next((line[len("a=mid:") :] for line in lines if line.startswith("a=mid:")), None)
        opus = next((found[1] for line in lines if (found := _OPUS.match(line))), None)
        formats = (media[3] or "").split()
        sections.append(_MediaSection(media[1], media[2], formats, mid, opus))
    return sections
