"""All configuration, read once from the environment (prefix `CALLBRIDGE_`)."""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Annotated, Any, Final, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from service.handoffs.queue import claim_idle_s, worst_case_answer_s
from service.ice_servers import IceServers, SharedSecret, TurnCredential, is_turn
from service.redis_urls import check_redis_url, is_redis_url
from signaling.realtime import VOICES, CallLimits, ReconnectPolicy
from signaling.redaction import too_short

OPENAI_API_BASE = "https://api.openai.com"
ENV_PREFIX = "CALLBRIDGE_"
# RFC 7064 §3.1 (stun, stuns) and RFC 7065 §3.1 (turn, turns): a host (a name, IPv4 or a
# bracketed IPv6 address), an optional port, and for TURN an optional transport.
_ICE_HOST_PORT = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::[0-9]{1,5})?"
_ICE_SERVER_URI = re.compile(
    rf"stuns?:{_ICE_HOST_PORT}|turns?:{_ICE_HOST_PORT}(?:\?transport=(?:udp|tcp))?",
    re.IGNORECASE,
)
_ICE_PORT = re.compile(r":([0-9]{1,5})(?:\?|$)")
DEFAULT_MAX_REQUEST_HEAD_BYTES = 65536
DEFAULT_REQUEST_READ_TIMEOUT_S = 30.0
MAX_SECONDS = 30 * 86400
"""The largest value of any duration setting (`*_S`), 30 days: past some such value, time
stamps made from it overflow (a call limit of `1e300` s made every read of the call's record
fail), and a timer that long never fires anyway."""


def _printable_ascii(value: str) -> bool:
    return bool(value) and value.isascii() and value.isprintable()


def _secret_or_unset(value: object) -> object:
    """A secret setting's value without surrounding whitespace, or None (unset) when nothing
    is left."""
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    if not isinstance(raw, str):
        return value
    # `VAR=` (what docker-compose and .env files write for a variable with no value) and a
    # blank value mean unset: an empty HMAC key would sign tokens anyone can forge. A value
    # read from a file often ends with a newline, which is no part of the secret either.
    secret = raw.strip()
    return SecretStr(secret) if secret else None


Secret = Annotated[SecretStr | None, BeforeValidator(_secret_or_unset)]
"""The type of every setting holding a secret: empty or whitespace only is unset, and
surrounding whitespace is not part of the secret (see README, Secrets)."""


_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def _origin(entry: str) -> str | None:
    """`entry`'s origin as a browser serialises it (RFC 6454 §6.2: lower case, the host in
    ASCII (IDNA), no default port), or None when it names no scheme and host, names a port
    out of range, a host IDNA cannot take, or userinfo."""
    try:
        parts = urlsplit(entry)
        port = parts.port
        hostname = parts.hostname
        if not parts.scheme or not hostname or parts.username or parts.password:
            return None
        host = f"[{hostname}]" if ":" in hostname else hostname.encode("idna").decode("ascii")
    except (ValueError, UnicodeError):
        return None
    shown = port is not None and _DEFAULT_PORTS.get(parts.scheme.lower()) != port
    return f"{parts.scheme}://{host}{f':{port}' if shown else ''}".lower()


Port = Annotated[int, Field(ge=0, le=65535)]
"""A TCP port to listen on (0: any free one), as a setting or a command-line option."""


def _is_secret(field: FieldInfo) -> bool:
    return any(getattr(meta, "func", None) is _secret_or_unset for meta in field.metadata)


class _Environment(EnvSettingsSource):
    """The environment, where a secret setting read from several variables takes the first
    that holds a secret.

    pydantic-settings takes the first variable present, even blank; `Secret` then makes blank
    unset, so `CALLBRIDGE_API_KEY=` (as a .env template exports it) would hide the key in
    `OPENAI_API_KEY`. A blank value is passed on only when no name holds more.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        found = super().get_field_value(field, field_name)
        if _is_secret(field) and _secret_or_unset(found[0]) is None:
            for key, name, complex_value in self._extract_field_info(field, field_name):
                value = self.env_vars.get(name)
                if _secret_or_unset(value) is not None:
                    return value, key, complex_value
        return found


class ConfigurationError(ValueError):
    """The settings are valid one by one but cannot run the service together; the message is
    one line naming the settings involved."""


@contextmanager
def resolving(name: str) -> Iterator[None]:
    """Turns what resolving setting `name` (`CALLBRIDGE_` + name) raises, ValueError,
    ImportError or AttributeError, into a `ConfigurationError` naming it."""
    try:
        yield
    except (ValueError, ImportError, AttributeError) as exc:
        raise ConfigurationError(f"{ENV_PREFIX}{name}: {exc}") from None


def describe_invalid(exc: ValidationError) -> str:
    """One line naming each invalid setting and what is wrong with it (never its value)."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        names = [str(part) for part in error["loc"]]
        if names and not names[0].isupper():
            names[0] = ENV_PREFIX + names[0].upper()
        problems.append(f"{'.'.join(names)}: {message}" if names else message)
    return "; ".join(problems)


class Settings(BaseSettings):
    """One settings object for the whole service; every field has a documented default.

    The README's settings table is generated from these fields' descriptions.
    """

    # An empty variable is an unset one: a .env template or a compose file's `${VAR:-}`
    # exports `CALLBRIDGE_X=` for a setting it leaves alone, which must not refuse to start
    # (an integer) or mean something other than the default (a URL, a list).
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", populate_by_name=True, env_ignore_empty=True
    )
    _tokens_of: SecretStr | None = PrivateAttr(default=None)
    _tokens: tuple[str, ...] = PrivateAttr(default=())

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _Environment(settings_cls), dotenv_settings, file_secret_settings

    # Provider
    provider: Literal["local", "openai", "azure"] = Field(
        "local",
        description="`local` runs the offline stand-in provider in-process; `openai`; `azure` "
        "(Azure OpenAI: `api-key` or Entra ID auth, see `CALLBRIDGE_AZURE_*`).",
    )
    provider_url: str | None = Field(
        None,
        description="Provider base URL. Default: https://api.openai.com for `openai`; the "
        "embedded stand-in for `local` (set it to reach a separate `callbridge provider`).",
    )
    api_key: Secret = Field(
        None,
        validation_alias=AliasChoices("CALLBRIDGE_API_KEY", "OPENAI_API_KEY"),
        description="Provider API key (`OPENAI_API_KEY` is read too); `serve` refuses to start "
        "without one for `openai`, and for `azure` with `api-key` auth. Never logged or returned "
        "(see [Secrets](#secrets)).",
    )
    model: str = Field("gpt-realtime-1.5", description="Realtime model sent at call creation.")
    voice: str = Field("marin", description="Default assistant voice.")
    instructions: str = Field(
        "You are a helpful voice assistant. Delegate real work to the background agent.",
        description="Default session instructions.",
    )
    output_modality: Literal["audio", "text"] = Field(
        "audio", description="Default output modality."
    )
    session_mode: Literal["conversational", "transcription"] = Field(
        "conversational", description="Default session mode."
    )
    transcription_model: str = Field(
        "gpt-4o-mini-transcribe", description="Input transcription model."
    )
    azure_resource: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$",
        description="Azure OpenAI resource name: the base URL is "
        "https://{resource}.openai.azure.com/openai (or set `CALLBRIDGE_PROVIDER_URL`; `azure` "
        "needs one of them).",
    )
    azure_auth: Literal["api-key", "entra-id"] = Field(
        "api-key",
        description="Azure auth: the `api-key` header (`CALLBRIDGE_API_KEY`), or a Microsoft "
        "Entra ID token from azure-identity (`pip install 'callbridge[azure]'`).",
    )
    provider_timeout_s: float = Field(
        10.0,
        gt=0,
        le=MAX_SECONDS,
        description="Total deadline of one provider HTTP request: connect, send and the whole "
        "answer (not per read).",
    )
    provider_max_response_bytes: int = Field(
        1 << 20, gt=0, description="Largest provider HTTP answer read (past it: 502)."
    )
    provider_connect_timeout_s: float = Field(
        5.0, gt=0, le=MAX_SECONDS, description="TCP connect timeout for provider calls."
    )

    hangup_retry_s: float = Field(
        600.0,
        gt=0,
        le=MAX_SECONDS,
        description="How long a hang-up the provider does not confirm is retried (backoff up "
        "to 30 s; with Redis, by any instance) before the call is reported as possibly still "
        'live at the provider (`callbridge_provider_hangups_total{outcome="abandoned"}`).',
    )

    # Sideband
    sideband_max_attempts: int = Field(
        12,
        ge=1,
        description="Attempts to join or rejoin the sideband before giving up: with the "
        "default backoff, 20 to 40 s of provider outage, which the call's media outlives.",
    )
    sideband_backoff_s: float = Field(
        0.2, gt=0, le=MAX_SECONDS, description="First reconnect backoff (doubles)."
    )
    sideband_backoff_max_s: float = Field(
        5.0, gt=0, le=MAX_SECONDS, description="Largest reconnect backoff."
    )
    sideband_ping_interval_s: float = Field(
        20.0, gt=0, le=MAX_SECONDS, description="WebSocket keepalive period."
    )
    sideband_compression: bool = Field(
        False,
        description="Offer permessage-deflate (RFC 7692) on the sideband. Off: each compressed "
        "connection holds zlib state (tens of KiB per call) for little gain on small JSON events.",
    )
    max_call_duration_s: float = Field(
        3600.0, gt=0, le=MAX_SECONDS, description="Calls are hung up after this long."
    )
    idle_timeout_s: float = Field(
        300.0,
        gt=0,
        le=MAX_SECONDS,
        description="Calls with no transcript, speech or handoff activity this long end.",
    )
    max_transcript_items: int = Field(
        10_000,
        ge=1,
        description="Conversation items kept per call; later items are counted, not kept.",
    )
    max_transcript_bytes: int = Field(
        1_000_000,
        ge=1,
        description="UTF-8 bytes of transcript text kept per call; later text is counted, "
        "not kept.",
    )
    max_errors_per_call: int = Field(
        100,
        ge=1,
        description="Errors recorded, published and logged per call; later ones are counted "
        "in the call's `limits_reached`, not reported one by one.",
    )

    # Handoffs
    queue: str = Field(
        "memory",
        description="`memory`, or a Redis URL (Redis Streams; also the call directory and "
        "shared rate limits): `redis://`, `rediss://` (TLS), `unix://`, or for a Redis "
        "Cluster `redis+cluster://host:port[,host:port...]` (`rediss+cluster://` for TLS).",
    )
    handler: str = Field(
        "service.handoffs.builtin:answer",
        description="Handoff handler: `module:function`, `cmd:<shell command>` or an http(s) URL.",
    )
    handler_timeout_s: float = Field(
        60.0, gt=0, le=MAX_SECONDS, description="Per-handoff handler timeout."
    )
    queue_claim_idle_s: float | None = Field(
        None,
        gt=0,
        le=MAX_SECONDS,
        description="Redis: a handoff silent this long is taken from its worker by another. "
        "Default: the handler timeout plus 30 s.",
    )
    handoff_deadline_s: float | None = Field(
        None,
        gt=0,
        le=MAX_SECONDS,
        description="A handoff with no result or failure this long after it was queued fails: "
        "the model gets an error output, a later result is kept in the record as "
        "`late_output`. Progress does not extend it. Default: 3 deliveries x the longer of the "
        "handler timeout and the claim idle time, plus one handler timeout (330 s).",
    )
    handoff_max_text_bytes: int = Field(
        32768,
        ge=1024,
        description="Largest result, progress message or failure text of a handoff, and total "
        "progress text per handoff, in UTF-8 bytes: longer text is cut with a marker, more "
        "progress is dropped; counted in the call's `limits_reached`. Also the largest prompt "
        "the model may hand off: a longer `background_agent` call is refused, and the model "
        "is told to call again with a shorter one.",
    )
    ended_call_retention_s: float = Field(
        300.0,
        ge=0,
        le=MAX_SECONDS,
        description="How long an ended call stays findable through the call directory, so "
        "any instance can still show its record and events; on one instance without Redis, "
        "how long its events stay readable (`Last-Event-ID` resumes after the end).",
    )
    ended_calls_max_bytes: int = Field(
        64 << 20,
        ge=0,
        description="Total size (as JSON) of the ended-call records an instance keeps for "
        "`GET /v1/calls/{id}`, and without Redis of their events; the oldest calls are "
        "dropped first.",
    )
    call_lease_s: float = Field(
        5.0,
        gt=0,
        le=MAX_SECONDS,
        description="Redis: how long a call's ownership lease lasts unrenewed; once it lapses "
        "another instance takes the call over (renewed every third of it).",
    )
    call_events_kept: int = Field(
        1000,
        ge=10,
        description="SSE events kept per call for `Last-Event-ID` resumption (with Redis: on "
        "any instance, trimmed approximately).",
    )
    drain_handover: bool = Field(
        True,
        description="On SIGTERM with live peers, hand calls over to them instead of hanging "
        "up after the drain timeout (alone, calls are drained either way).",
    )
    instance_id: str | None = Field(
        None,
        description="This instance's name in the call directory (default: random, new at each "
        "start). A fixed one must be unique among running instances: `serve` refuses to start "
        "while another running instance has it.",
    )
    worker_concurrency: int = Field(4, ge=1, description="Handoffs one worker runs at once.")
    embedded_worker: bool = Field(
        True, description="Run a worker inside `serve` (the offline default)."
    )

    # Phone calls (SIP)
    webhook_secret: Secret = Field(
        None,
        description="Standard Webhooks secret (`whsec_...`) of the provider's webhooks; unset: "
        "`POST /v1/provider/webhooks` answers 404.",
    )
    webhook_replay_cache: int = Field(
        10000,
        ge=1,
        description="Webhook ids an instance without Redis remembers to refuse replays (oldest "
        "forgotten); with Redis every id is remembered there, shared by all instances.",
    )
    sip_router: str | None = Field(
        None,
        description="Decides incoming phone calls: `module:function` or an http(s) URL "
        "answering accept, reject or refer. Unset: accept with the session defaults.",
    )
    sip_router_timeout_s: float = Field(
        3.0,
        gt=0,
        le=MAX_SECONDS,
        description="A router slower than this: the call is rejected with 480.",
    )

    # HTTP
    host: str = Field("127.0.0.1", description="Bind address for `serve`.")
    port: Port = Field(8080, description="Bind port for `serve`.")
    max_sdp_bytes: int = Field(65536, gt=0, description="Largest accepted SDP offer.")
    max_json_bytes: int = Field(65536, gt=0, description="Largest accepted JSON body.")
    max_message_chars: int = Field(4096, gt=0, description="Largest injected text message.")
    max_form_parts: int = Field(
        4, ge=2, description="Most parts a multipart call-start body may have (past it: 413)."
    )
    max_form_part_headers: int = Field(
        4, ge=1, description="Most header lines one multipart part may have (past it: 400)."
    )
    max_form_header_bytes: int = Field(
        1024,
        ge=128,
        description="Longest multipart header line, and longest request Content-Type (400).",
    )
    max_form_header_params: int = Field(
        8,
        ge=1,
        description="Most `;` parameters one multipart header, or a request's Content-Type, "
        "may carry (400).",
    )
    max_request_head_bytes: int = Field(
        DEFAULT_MAX_REQUEST_HEAD_BYTES,
        ge=1024,
        description="Longest request line and header fields together (past it: 431 and the "
        "connection closed; exact to one read of up to 256 KiB).",
    )
    request_read_timeout_s: float = Field(
        DEFAULT_REQUEST_READ_TIMEOUT_S,
        gt=0,
        le=MAX_SECONDS,
        description="A request's head must arrive within this of its first byte, and its body "
        "within this of the head (past it: 408 and the connection closed). Responses are not "
        "timed; a new connection silent this long is closed.",
    )
    max_calls: int = Field(100, ge=1, description="Concurrent calls per instance.")
    max_event_streams_per_call: int = Field(
        20,
        ge=1,
        description="Event streams (`GET /v1/calls/{id}/events`) one call may have open on an "
        "instance at once; past it a new one is answered 429. Each copies every event.",
    )
    sse_send_timeout_s: float = Field(
        10.0,
        gt=0,
        le=MAX_SECONDS,
        description="An event-stream subscriber whose socket takes no data this long is dropped "
        "(during the call, and when it ends).",
    )
    log_format: Literal["auto", "json", "text"] = Field(
        "auto",
        description="`auto` (human-readable on a terminal, JSON lines otherwise), `json` or "
        "`text`.",
    )
    log_level: str = Field("INFO", description="Root log level.")

    # Access
    api_tokens: Secret = Field(
        None,
        description="Comma-separated bearer tokens for call start and control. Unset: no auth, "
        "and `serve` binds to loopback only.",
    )
    ops_token: Secret = Field(
        None, description="Bearer token for `/metrics` and the call listing (unset: open)."
    )
    call_token_secret: Secret = Field(
        None,
        description="HMAC secret enabling short-lived call tokens (`POST /v1/call-tokens`); "
        "needs `CALLBRIDGE_API_TOKENS` (they are minted with an API token).",
    )
    call_token_ttl_s: int = Field(300, ge=10, le=86400, description="Call token lifetime.")
    rate_limit_per_minute: float = Field(
        60.0, gt=0, description="Call starts per client address per minute."
    )
    rate_limit_burst: int = Field(10, ge=1, description="Call starts a client may make at once.")
    forwarded_allow_ips: str | None = Field(
        None,
        description="Comma-separated addresses or networks (CIDR) of the reverse proxies whose "
        "`X-Forwarded-For` and `X-Forwarded-Proto` are trusted, or `*` for any: the client a "
        "proxied request is counted against by the rate limit. Unset: uvicorn's own "
        "`FORWARDED_ALLOW_IPS`, by default `127.0.0.1,::1`.",
    )
    cors_origins: str = Field(
        "",
        description="Comma-separated origins allowed by CORS (`*` for any); empty: none. Each "
        "is kept as a browser sends it (`scheme://host[:port]`, lower case, no default port; a "
        "trailing `/` is dropped); an entry with a path or without a scheme is refused.",
    )
    ice_servers: str = Field(
        "",
        description="Comma-separated `stun:`/`stuns:`/`turn:`/`turns:` URIs (RFC 7064, RFC 7065) "
        'advertised in `Link: rel="ice-server"` (RFC 9725 §4.6); TURN credentials come from '
        "`CALLBRIDGE_TURN_SHARED_SECRET` or `CALLBRIDGE_TURN_USERNAME`/`_PASSWORD`.",
    )
    turn_shared_secret: Secret = Field(
        None,
        description="Secret shared with the TURN servers of `CALLBRIDGE_ICE_SERVERS` (coturn's "
        "`static-auth-secret` with `use-auth-secret`): every answer to a caller allowed to start "
        "calls gives the TURN links a new username `<expiry>:<random id>` and password "
        "base64(HMAC-SHA1(secret, username)), the TURN REST API scheme. Never logged or "
        "returned.",
    )
    turn_credential_ttl_s: int = Field(
        86400,
        ge=60,
        le=MAX_SECONDS,
        description="How long a TURN credential derived from `CALLBRIDGE_TURN_SHARED_SECRET` "
        "is valid at most. One given to a call token expires sooner when the last call the "
        "token may start ends sooner: `CALLBRIDGE_MAX_CALL_DURATION_S`, plus a call start's "
        "own deadlines, after the token expires.",
    )
    turn_username: str | None = Field(
        None,
        description="Static TURN username (a long-term user of the TURN server), given with "
        "`CALLBRIDGE_TURN_PASSWORD` on the TURN links to callers allowed to start calls; "
        "printable ASCII, at most 508 bytes. Not with `CALLBRIDGE_TURN_SHARED_SECRET`.",
    )
    turn_password: Secret = Field(
        None,
        description="Static TURN password of `CALLBRIDGE_TURN_USERNAME`; printable ASCII. "
        "Given to callers allowed to start calls, never logged. With `CALLBRIDGE_TURN_USERNAME` "
        "it cannot be bounded by a call token's lifetime: whoever got it may relay until it is "
        "changed (`CALLBRIDGE_TURN_SHARED_SECRET` gives credentials that expire).",
    )
    drain_timeout_s: float = Field(
        30.0,
        ge=0,
        le=MAX_SECONDS,
        description="On SIGTERM, how long live calls may continue before hang-up.",
    )

    # Local provider
    local_trigger_phrase: str = Field(
        "background agent", description="Phrase that makes the local provider call the tool."
    )
    local_phrases: str = Field(
        "",
        description="Local provider: comma-separated phrases speech is decoded against first "
        "(empty: the built-in list); other speech falls back to the general model.",
    )
    local_asr_processes: int = Field(
        1, ge=1, le=16, description="Local provider: processes decoding speech."
    )
    local_tts_voice: str = Field("en-us", description="Local provider: espeak-ng voice.")
    local_flavor: Literal["openai", "azure"] = Field(
        "openai",
        description="Local provider: `azure` demands the `api-key` header (not a bearer key) "
        "and serves the API only under `/openai`, like Azure OpenAI.",
    )
    local_media: bool = Field(
        True,
        description="Local provider: answer with a real WebRTC peer. `false`: signaling and "
        "sideband only (capacity benchmarks).",
    )

    @field_validator("voice")
    @classmethod
    def _known_voice(cls, value: str) -> str:
        if value not in VOICES:
            raise ValueError(f"voice must be one of {', '.join(VOICES)}")
        return value

    @field_validator("api_key")
    @classmethod
    def _usable_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            key = value.get_secret_value()
            if not key.isprintable() or " " in key:
                raise ValueError("the API key holds spaces or control characters")
        return value

    @field_validator("provider_url")
    @classmethod
    def _usable_provider_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            raise ValueError("the provider URL is not a URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
            raise ValueError("the provider URL must be http(s)://host[:port][/path]")
        if parts.username is not None or parts.password is not None:
            raise ValueError("the provider URL must not hold credentials: use the API key")
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxy_addresses(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "*":
            return value
        for entry in cls.split(value):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or network (CIDR); list proxies as "
                    "addresses or networks, comma-separated, or give '*' alone"
                ) from None
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        """Each entry as the origin a browser sends (RFC 6454 §6.2: `scheme://host[:port]`,
        lower case, no path), since CORS compares them as strings: `https://app.example/`
        would never match and refuse every preflight."""
        entries = cls.split(value)
        if entries == ["*"]:
            return value
        origins = []
        for number, entry in enumerate(entries, start=1):
            # The entry is not echoed: one with userinfo or a query may carry a credential.
            origin = _origin(entry)
            if origin is None:
                raise ValueError(
                    f"entry {number} is not an origin: give scheme://host[:port] (RFC 6454), "
                    "comma-separated, or '*' alone"
                )
            if urlsplit(entry).path not in ("", "/") or "?" in entry or "#" in entry:
                raise ValueError(
                    f"entry {number} is not an origin (a browser sends no path): give {origin!r}"
                )
            origins.append(origin)
        return ",".join(origins)

    @field_validator("ice_servers")
    @classmethod
    def _ice_server_uris(cls, value: str) -> str:
        for uri in cls.split(value):
            port = _ICE_PORT.search(uri)
            if _ICE_SERVER_URI.fullmatch(uri) is None or (port and int(port[1]) > 65535):
                # The URI is not echoed: a TURN URI with userinfo would carry a credential.
                raise ValueError(
                    "each entry must be a stun:, stuns:, turn: or turns: URI (RFC 7064, RFC 7065): "
                    "host, optional :port, and for turn(s) an optional ?transport=udp or tcp"
                )
        return value

    @field_validator("turn_username")
    @classmethod
    def _usable_turn_username(cls, value: str | None) -> str | None:
        # RFC 8489 §14.3: a USERNAME is less than 509 bytes.
        if value is not None and not (_printable_ascii(value) and len(value) <= 508):
            raise ValueError("the TURN username must be 1 to 508 printable ASCII characters")
        return value

    @field_validator("turn_password", "turn_shared_secret")
    @classmethod
    def _usable_turn_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # Sent in a header (the password) or compared with a TURN server's configuration line
        # (the secret): a control or non-ASCII character would be mangled on the way.
        if value is not None and not _printable_ascii(value.get_secret_value()):
            raise ValueError("the value must be printable ASCII characters")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"):
            raise ValueError("the log level must be CRITICAL, ERROR, WARNING, INFO or DEBUG")
        return level

    @field_validator("queue")
    @classmethod
    def _queue_kind(cls, value: str) -> str:
        if value != "memory" and not is_redis_url(value):
            raise ValueError(
                "queue must be 'memory' or a redis://, rediss://, unix://, redis+cluster:// "
                "or rediss+cluster:// URL"
            )
        if value == "memory":
            return value
        # The URL is not echoed: it may hold a password.
        try:
            check_redis_url(value)
        except ValueError as exc:
            raise ValueError(f"the Redis URL is not usable: {exc}") from None
        return value

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if self.call_token_secret is not None and not self.api_token_list():
            raise ValueError(
                "CALLBRIDGE_CALL_TOKEN_SECRET needs CALLBRIDGE_API_TOKENS: call tokens are "
                "minted with an API token, and without one every request would be refused"
            )
        if self.sideband_backoff_s > self.sideband_backoff_max_s:
            raise ValueError(
                "CALLBRIDGE_SIDEBAND_BACKOFF_S must not exceed CALLBRIDGE_SIDEBAND_BACKOFF_MAX_S"
            )
        if self.provider == "azure" and not (self.azure_resource or self.provider_url):
            raise ValueError(
                "CALLBRIDGE_PROVIDER=azure needs CALLBRIDGE_AZURE_RESOURCE or "
                "CALLBRIDGE_PROVIDER_URL"
            )
        self._coherent_turn()
        return self

    def _coherent_turn(self) -> None:
        static = self.turn_username is not None or self.turn_password is not None
        if self.turn_shared_secret is not None and static:
            raise ValueError(
                "CALLBRIDGE_TURN_SHARED_SECRET and CALLBRIDGE_TURN_USERNAME/_PASSWORD are two "
                "ways to give TURN credentials: set one of them"
            )
        if (self.turn_username is None) != (self.turn_password is None):
            missing = "PASSWORD" if self.turn_password is None else "USERNAME"
            raise ValueError(
                "CALLBRIDGE_TURN_USERNAME and CALLBRIDGE_TURN_PASSWORD must be set together: "
                f"CALLBRIDGE_TURN_{missing} is missing"
            )
        if (static or self.turn_shared_secret is not None) and not any(
            is_turn(uri) for uri in self.split(self.ice_servers)
        ):
            raise ValueError(
                "TURN credentials are given on turn: and turns: links only, and "
                "CALLBRIDGE_ICE_SERVERS names no such URI"
            )

    def ice_server_config(self) -> IceServers:
        """The ICE servers to advertise, where their TURN credentials come from, and how long
        after a token expires a call it started may still need its relay: the call start's own
        deadlines (its offer read, the provider's answer), then the longest call."""
        turn: SharedSecret | TurnCredential | None = None
        if self.turn_shared_secret is not None:
            secret = self.turn_shared_secret.get_secret_value().encode()
            turn = SharedSecret(secret, self.turn_credential_ttl_s)
        elif self.turn_username is not None and self.turn_password is not None:
            turn = TurnCredential(self.turn_username, self.turn_password.get_secret_value())
        reach = self.request_read_timeout_s + self.provider_timeout_s + self.max_call_duration_s
        return IceServers(tuple(self.split(self.ice_servers)), turn, reach)

    def provider_base_url(self, embedded_url: str | None = None) -> str:
        """The provider's base URL (scheme and host, no `/v1`)."""
        if self.provider_url:
            base = self.provider_url.rstrip("/")
            # Accept the SDKs' habit of including /v1 in the base URL.
            return base.removesuffix("/v1")
        if self.provider == "openai":
            return OPENAI_API_BASE
        if self.provider == "azure":
            if not self.azure_resource:
                raise ValueError("provider azure needs CALLBRIDGE_AZURE_RESOURCE or _PROVIDER_URL")
            return f"https://{self.azure_resource}.openai.azure.com/openai"
        if embedded_url is None:
            raise ValueError("the local provider's URL is known only once it is running")
        return embedded_url

    def call_limits(self) -> CallLimits:
        """The limits each call runs under."""
        return CallLimits(
            max_duration_s=self.max_call_duration_s,
            idle_timeout_s=self.idle_timeout_s,
            reconnect=ReconnectPolicy(
                self.sideband_max_attempts, self.sideband_backoff_s, self.sideband_backoff_max_s
            ),
            max_transcript_items=self.max_transcript_items,
            max_transcript_bytes=self.max_transcript_bytes,
            max_errors=self.max_errors_per_call,
            max_request_bytes=self.handoff_max_text_bytes,
            handoff_deadline_s=self.handoff_deadline(),
        )

    def handoff_deadline(self) -> float:
        """Seconds a call waits for a handoff's result (`handoff_deadline_s` or its default)."""
        if self.handoff_deadline_s is not None:
            return self.handoff_deadline_s
        idle = claim_idle_s(self.handler_timeout_s, self.queue_claim_idle_s)
        return worst_case_answer_s(self.handler_timeout_s, idle)

    def api_token_list(self) -> tuple[str, ...]:
        """The configured API tokens."""
        # Asked on every request that authenticates: split again only when the setting is
        # another object than the one split last (set anew, or a copy with it updated).
        if self.api_tokens is not self._tokens_of:
            raw = self.api_tokens.get_secret_value() if self.api_tokens else ""
            self._tokens = tuple(t.strip() for t in raw.split(",") if t.strip())
            self._tokens_of = self.api_tokens
        return self._tokens

    def secrets(self) -> list[str]:
        """Every secret value, for log redaction."""
        return [value for _, value in self._named_secrets()]

    def short_secrets(self) -> list[str]:
        """The settings (by variable name) holding a secret too short to be redacted from
        provider text and logs reliably (`signaling.redaction.too_short`)."""
        return list(
            dict.fromkeys(name for name, value in self._named_secrets() if too_short(value))
        )

    def _named_secrets(self) -> list[tuple[str, str]]:
        named = [(f"{ENV_PREFIX}API_KEY", self.api_key_value() or "")]
        named += [(f"{ENV_PREFIX}API_TOKENS", token) for token in self.api_token_list()]
        for name, secret in (
            ("OPS_TOKEN", self.ops_token),
            ("CALL_TOKEN_SECRET", self.call_token_secret),
            ("WEBHOOK_SECRET", self.webhook_secret),
            ("TURN_SHARED_SECRET", self.turn_shared_secret),
            ("TURN_PASSWORD", self.turn_password),
        ):
            if secret is not None:
                named.append((ENV_PREFIX + name, secret.get_secret_value()))
        return [(name, value) for name, value in named if value]

    @staticmethod
    def split(raw: str) -> list[str]:
        """A comma-separated setting as a list."""
        return [part.strip() for part in raw.split(",") if part.strip()]

    def api_key_value(self) -> str | None:
        """The provider key in clear, for the provider clients only."""
        return self.api_key.get_secret_value() if self.api_key else None


def setting_variables() -> frozenset[str]:
    """Every environment variable a `Settings` field is read from."""
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        names.add(ENV_PREFIX + name.upper())
        if isinstance(field.validation_alias, AliasChoices):
            names.update(c for c in field.validation_alias.choices if isinstance(c, str))
    return frozenset(names)


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One warning per `CALLBRIDGE_*` variable in `environ` that names no setting (a misspelt
    one is otherwise ignored without a word), naming the closest setting when one is close."""
    known = setting_variables()
    # Compared without the prefix every candidate shares, which would make any two look alike.
    names = [k.removeprefix(ENV_PREFIX) for k in known if k.startswith(ENV_PREFIX)]
    warnings = []
    for variable in sorted(environ):
        if not variable.startswith(ENV_PREFIX) or variable in known:
            continue
        close = difflib.get_close_matches(variable.removeprefix(ENV_PREFIX), names, n=1, cutoff=0.8)
        hint = f" (did you mean {ENV_PREFIX}{close[0]}?)" if close else ""
        warnings.append(f"{variable} is not a setting and is ignored{hint}")
    return warnings
