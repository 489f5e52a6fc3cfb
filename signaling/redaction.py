"""Redaction of provider text before it is stored, served or logged.

A provider may quote what it was sent, credentials included (an "Incorrect API key provided:
sk-..." error is the common case), and not always verbatim: URL-encoded (`sk%2D...`), with a
typographic hyphen (U+2010 and its kin), JSON-escaped (`\\u002d`), as HTML character references
(`&#115;`), base64-encoded (an echoed `Basic` header), and a key made of hex digits (Azure's)
in either case. Every string that comes from the provider (its SDP answer, `Location`, HTTP
error bodies, sideband `error` events and close reasons, join refusals) goes through `redact`
first, and so does every log line.

A secret is matched by its distinctive part: what follows a public prefix such as `sk-`,
`sk-proj-` or `whsec_` (the whole secret when it has none), so that a mangled prefix does not
hide it. A distinctive part shorter than `MIN_SECRET_CHARS` is not substring-redacted at all:
replacing every "k" of every line would garble the logs and reveal the secret's value
(`too_short` names such secrets so that the service can warn about them).
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

REDACTED: Final = "[REDACTED]"
"""What a secret is replaced with."""

MIN_SECRET_CHARS: Final = 12
"""Shortest distinctive part (after a public prefix) a configured secret is redacted by."""

# Unicode dash punctuation a provider (or a text pipeline on its side) may put for `-`.
_DASHES: Final = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d"
_DASH_CLASS: Final = "[" + re.escape(_DASHES) + "]"
_ENCODED_DASH: Final = r"(?:" + _DASH_CLASS + r"|%2[dD])"
# OpenAI-style keys (sk-..., sk-proj-..., rk-...), JWTs (Entra ID tokens, RFC 7519) and bearer
# credentials, whichever they quote: the provider may echo a key we never configured here
# (another service's, a test one, a token minted for this request).
_KEY_LIKE: Final = re.compile(
    rf"\b(?:sk|rk|pk){_ENCODED_DASH}(?:[A-Za-z0-9_]|{_ENCODED_DASH}){{8,}}"
    r"|\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/\-]{8,}=*"
)
_HEX: Final = re.compile(r"[0-9A-Fa-f]+")
_KEY_MARKERS: Final = ("sk", "rk", "pk", "eyj", "bearer")
# What an escaped character starts with: percent-encoding, a JSON escape, an HTML reference.
_ESCAPES: Final = ("%", "\\", "&#")
# A public prefix: short lowercase words, each followed by `-` or `_` (`sk-proj-`, `whsec_`).
_PUBLIC_PREFIX: Final = re.compile(r"(?:[a-z]{2,8}[-_]){1,3}")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with each of `secrets` (in the encodings the module docstring lists) and anything
    shaped like an API key replaced by `[REDACTED]`. Empty secrets, and secrets whose
    distinctive part is shorter than `MIN_SECRET_CHARS`, are skipped (see `too_short`)."""
    forms = _secret_forms(tuple(secrets))
    if forms is not None and forms.may_occur_in(text):
        text = forms.pattern.sub(REDACTED, text)
    return _KEY_LIKE.sub(REDACTED, text) if _may_hold_a_key(text) else text


def redact_head(text: str, max_chars: int, secrets: Iterable[str] = ()) -> str:
    """At most the first `max_chars` characters of `text`, redacted as by `redact`.

    Redacted whole, then cut: cut first, a secret crossing the cut would be left all but its
    last characters, which no longer match it. The work is linear in `len(text)`, which the
    caller bounds (a provider's answer is capped in size).
    """
    return redact(text, secrets)[:max_chars]


def _may_hold_a_key(text: str) -> bool:
    # Every `_KEY_LIKE` match holds one of these, whatever its case; looking for them is ten
    # times cheaper than running the pattern over text that has none (an SDP answer, mostly).
    low = text.lower()
    return any(marker in low for marker in _KEY_MARKERS)


def too_short(secret: str) -> bool:
    """Whether `secret` is too short to be redacted from text reliably (or empty)."""
    return len(_distinctive(secret)) < MIN_SECRET_CHARS


def _distinctive(secret: str) -> str:
    prefix = _PUBLIC_PREFIX.match(secret)
    body = secret[prefix.end() :] if prefix else secret
    return body if len(body) >= MIN_SECRET_CHARS else secret


@dataclass(frozen=True, slots=True)
class _SecretForms:
    """One regex matching every usable secret in every encoding, and what any match shows."""

    pattern: re.Pattern[str]
    # Lower-cased: a verbatim match holds one of these whatever its case; an escaped one
    # holds one of `_ESCAPES`.
    needles: tuple[str, ...]

    def may_occur_in(self, text: str) -> bool:
        # Far cheaper than running the pattern over text without a secret (most of it).
        if any(escape in text for escape in _ESCAPES):
            return True
        low = text.lower()
        return any(needle in low for needle in self.needles)


@functools.lru_cache(maxsize=32)
def _secret_forms(secrets: tuple[str, ...]) -> _SecretForms | None:
    """The forms of every usable secret (compiled once per set)."""
    forms: list[str] = []
    needles: list[str] = []
    for secret in sorted(set(secrets), key=len, reverse=True):
        if too_short(secret):
            continue
        body = _distinctive(secret)
        prefix = secret[: len(secret) - len(body)]
        # A hex key means the same in either case, and a provider may print it either way.
        fold = _HEX.fullmatch(body) is not None
        encoded = _encoded(body, fold)
        forms.append(f"(?:{_encoded(prefix, fold)})?{encoded}" if prefix else encoded)
        # Only its dashes vary in a verbatim body: the longest stretch without one does not.
        needles.append(max(body.split("-"), key=len).lower())
        cores = _base64_cores(secret)
        forms.extend(re.escape(core) for core in cores)
        needles.extend(core.lower() for core in cores)
    if not forms:
        return None
    return _SecretForms(re.compile("|".join(forms)), tuple(needles))


def _encoded(text: str, fold_case: bool = False) -> str:
    """A regex matching `text` with any of its characters written as itself, percent-encoded
    (RFC 3986 §2.1, either case), JSON-escaped (RFC 8259 §7) or as an HTML numeric character
    reference (decimal or hex); dashes as any dash; letters in either case if `fold_case`."""
    return "".join(_encoded_char(char, fold_case) for char in text)


def _encoded_char(char: str, fold_case: bool) -> str:
    literals = _DASHES if char == "-" else char
    if fold_case and char.isalpha():
        literals = char.lower() + char.upper()
    options = [re.escape(c) for c in literals]
    for c in literals:
        percent = "".join(f"%{byte:02X}" for byte in c.encode())
        options.append(_either_case(percent))
        if ord(c) < 0x10000:
            options.append(_either_case(rf"\\u{ord(c):04X}"))
        options.append(rf"&#0*{ord(c)};")
        options.append("&#[xX]0*" + _either_case(f"{ord(c):X}") + ";")
    if char == "/":
        options.append(r"\\/")
    return "(?:" + "|".join(dict.fromkeys(options)) + ")"


def _either_case(hex_escape: str) -> str:
    return re.sub(r"[A-F]", lambda m: f"[{m[0]}{m[0].lower()}]", hex_escape)


def _base64_cores(secret: str) -> list[str]:
    """The parts of `secret`'s base64 encodings (standard and URL-safe, RFC 4648 §4-5) that
    do not depend on what precedes it, for each of the three alignments it may have."""
    raw = secret.encode()
    cores: list[str] = []
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + raw).decode()
        # Characters whose 6 bits all come from the secret's bytes.
        first = -(-8 * offset // 6)
        last = (8 * (offset + len(raw))) // 6
        core = encoded[first:last]
        if len(core) >= MIN_SECRET_CHARS:
            cores.append(core)
            urlsafe = core.translate(str.maketrans("+/", "-_"))
            if urlsafe != core:
                cores.append(urlsafe)
    return cores
