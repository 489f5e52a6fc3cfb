"""`callbridge serve` refuses a configuration it cannot run with one line naming the setting.

Each case runs the real command; a refusal must come before it listens, so no port is needed.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr
from redis import Redis

from service.settings import Settings
from tests.e2e.processes import Process, free_port
from tests.e2e.redis_cluster import RedisClusterServers
from tests.e2e.redis_server import RedisServer


def _serve(**env: str) -> subprocess.CompletedProcess[str]:
    return _configured(["serve", "--port", "0"], **env)


def _configured(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """`callbridge *args` run with only the `CALLBRIDGE_*` settings `env` names."""
    clean = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("CALLBRIDGE_") and name != "OPENAI_API_KEY"
    }
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env={**clean, **{f"CALLBRIDGE_{name.upper()}": value for name, value in env.items()}},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _one_line_naming(result: subprocess.CompletedProcess[str], setting: str) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("callbridge: invalid configuration: ")
    assert setting in lines[0]
    return lines[0]


def test_a_call_token_secret_without_api_tokens_is_refused() -> None:
    line = _one_line_naming(_serve(call_token_secret="x" * 32), "CALLBRIDGE_CALL_TOKEN_SECRET")
    assert "CALLBRIDGE_API_TOKENS" in line


def test_openai_without_a_key_is_refused() -> None:
    _one_line_naming(_serve(provider="openai"), "CALLBRIDGE_API_KEY")


def test_an_empty_callbridge_api_key_leaves_the_key_in_openai_api_key_to_serve_with(
    tmp_path: Path,
) -> None:
    port = free_port()
    environment = {
        "CALLBRIDGE_PROVIDER": "openai",
        "CALLBRIDGE_API_KEY": "",
        "OPENAI_API_KEY": "sk-proj-0123456789abcdefghij",
    }
    serve = Process(["serve", "--port", str(port)], environment, tmp_path / "serve.log").start()
    try:
        serve.wait_http(f"http://127.0.0.1:{port}/healthz")
    finally:
        serve.stop()


def test_azure_without_a_key_is_refused() -> None:
    _one_line_naming(_serve(provider="azure", azure_resource="contoso"), "CALLBRIDGE_API_KEY")


def test_azure_without_a_resource_is_refused() -> None:
    result = _serve(provider="azure", api_key="0123456789abcdef0123456789abcdef")
    _one_line_naming(result, "CALLBRIDGE_AZURE_RESOURCE")


def test_an_invalid_setting_is_named_without_its_value() -> None:
    line = _one_line_naming(
        _serve(provider="azure", azure_resource="not a resource!"), "CALLBRIDGE_AZURE_RESOURCE"
    )
    assert "not a resource!" not in line


def test_a_handler_that_names_nothing_is_refused() -> None:
    _one_line_naming(_serve(handler="no_such_module:answer"), "CALLBRIDGE_HANDLER")


def test_a_key_with_a_trailing_newline_is_used_without_it() -> None:
    settings = Settings(provider="openai", api_key="sk-proj-0123456789abcdefghij\n")
    assert settings.api_key_value() == "sk-proj-0123456789abcdefghij"


def test_a_key_with_control_characters_inside_is_refused_without_its_value() -> None:
    line = _one_line_naming(
        _serve(provider="openai", api_key="sk-proj-0123\r\n456789abcdefghij"), "CALLBRIDGE_API_KEY"
    )
    assert "0123" not in line


@pytest.mark.parametrize(
    "url",
    ["not a url", "ftp://example.com", "http://127.0.0.1:99999", "http://[::1", "http://u:p@h"],
)
def test_a_provider_url_that_cannot_be_used_is_refused(url: str) -> None:
    _one_line_naming(
        _serve(provider="openai", api_key="sk-proj-0123456789abcdefghij", provider_url=url),
        "CALLBRIDGE_PROVIDER_URL",
    )


def test_an_unknown_log_level_is_refused() -> None:
    _one_line_naming(_serve(log_level="LOUD"), "CALLBRIDGE_LOG_LEVEL")


@pytest.mark.parametrize("value", ["1e300", "inf", "2592001"])
def test_a_duration_past_thirty_days_is_refused(value: str) -> None:
    _one_line_naming(_serve(max_call_duration_s=value), "CALLBRIDGE_MAX_CALL_DURATION_S")


def test_a_first_backoff_longer_than_the_largest_is_refused() -> None:
    result = _serve(sideband_backoff_s="10", sideband_backoff_max_s="1")
    _one_line_naming(result, "CALLBRIDGE_SIDEBAND_BACKOFF_S")


def _command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", ["dial", "ring"])
def test_play_names_a_missing_file_in_one_usage_line(command: str, tmp_path: Path) -> None:
    result = _command(command, "http://127.0.0.1:9/x", "--play", str(tmp_path / "nope.wav"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "cannot read" in result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("command", ["dial", "ring"])
def test_play_refuses_a_file_that_is_not_a_wav(command: str, tmp_path: Path) -> None:
    text = tmp_path / "notes.md"
    text.write_text("# not audio\n")
    result = _command(command, "http://127.0.0.1:9/x", "--play", str(text))
    assert result.returncode == 2
    assert "is not a WAV file" in result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("spec", ["http://", "ftp://example.com/route", "https:///path"])
def test_a_handler_url_without_a_host_or_over_another_scheme_is_refused(spec: str) -> None:
    _one_line_naming(_serve(handler=spec), "CALLBRIDGE_HANDLER")


@pytest.mark.parametrize("spec", ["ftp://x", "http://"])
def test_a_sip_router_url_without_a_host_or_over_another_scheme_is_refused(spec: str) -> None:
    _one_line_naming(_serve(sip_router=spec), "CALLBRIDGE_SIP_ROUTER")


@pytest.mark.parametrize("servers", ["stun:a.example,turn:bad url", "http://stun.example", "stun:"])
def test_an_ice_server_that_is_not_a_stun_or_turn_uri_is_refused(servers: str) -> None:
    line = _one_line_naming(_serve(ice_servers=servers), "CALLBRIDGE_ICE_SERVERS")
    assert "bad url" not in line


def test_stun_and_turn_uris_are_taken() -> None:
    servers = "stun:stun.example.com:3478, turns:[2001:db8::1]:5349?transport=tcp"
    assert Settings(ice_servers=servers).ice_servers == servers


def test_a_handler_url_with_a_port_out_of_range_is_refused() -> None:
    _one_line_naming(_serve(handler="http://127.0.0.1:99999/answer"), "CALLBRIDGE_HANDLER")


def test_an_ice_server_port_out_of_range_is_refused() -> None:
    _one_line_naming(_serve(ice_servers="stun:stun.example.com:99999"), "CALLBRIDGE_ICE_SERVERS")


def test_ice_server_schemes_are_taken_in_either_case() -> None:
    assert Settings(ice_servers="STUN:stun.example.com").ice_servers == "STUN:stun.example.com"


TURN_URI = "turn:turn.example.net"
STATIC_TURN = {"turn_username": "relay-user", "turn_password": "relay-password"}


def test_turn_credentials_of_both_kinds_are_refused() -> None:
    line = _one_line_naming(
        _serve(ice_servers=TURN_URI, turn_shared_secret="shared-secret", **STATIC_TURN),
        "CALLBRIDGE_TURN_SHARED_SECRET",
    )
    assert "CALLBRIDGE_TURN_USERNAME" in line


@pytest.mark.parametrize("given", ["turn_username", "turn_password"])
def test_a_turn_username_or_password_alone_is_refused(given: str) -> None:
    line = _one_line_naming(
        _serve(ice_servers=TURN_URI, **{given: STATIC_TURN[given]}), "CALLBRIDGE_TURN_USERNAME"
    )
    assert "CALLBRIDGE_TURN_PASSWORD" in line


@pytest.mark.parametrize("servers", ["", "stun:stun.example.net,stuns:stun.example.net"])
@pytest.mark.parametrize(
    "credentials", [{"turn_shared_secret": "shared-secret"}, STATIC_TURN], ids=["secret", "static"]
)
def test_turn_credentials_without_a_turn_uri_are_refused(
    servers: str, credentials: dict[str, str]
) -> None:
    _one_line_naming(_serve(ice_servers=servers, **credentials), "CALLBRIDGE_ICE_SERVERS")


@pytest.mark.parametrize("ttl", ["59", str(30 * 86400 + 1)])
def test_a_turn_credential_lifetime_out_of_range_is_refused(ttl: str) -> None:
    result = _serve(
        ice_servers=TURN_URI, turn_shared_secret="shared-secret", turn_credential_ttl_s=ttl
    )
    _one_line_naming(result, "CALLBRIDGE_TURN_CREDENTIAL_TTL_S")


@pytest.mark.parametrize(
    ("setting", "value", "beside"),
    [
        ("turn_username", "relay\tuser", {"turn_password": "relay-password"}),
        ("turn_username", "relay-usér", {"turn_password": "relay-password"}),
        ("turn_username", "u" * 509, {"turn_password": "relay-password"}),
        ("turn_password", "relay\npassword", {"turn_username": "relay-user"}),
        ("turn_shared_secret", "shared\u00a0secret", {}),
    ],
)
def test_turn_credentials_that_are_not_printable_ascii_are_refused_without_their_value(
    setting: str, value: str, beside: dict[str, str]
) -> None:
    result = _serve(ice_servers=TURN_URI, **{setting: value}, **beside)
    line = _one_line_naming(result, f"CALLBRIDGE_{setting.upper()}")
    assert value not in line


def test_turn_credentials_with_a_turn_uri_are_taken() -> None:
    settings = Settings(
        ice_servers=f"stun:stun.example.net,{TURN_URI}",
        turn_username="relay-user",
        turn_password=SecretStr("relay-password"),
    )
    assert settings.ice_server_config().credential(0, "any") is not None


def test_version_names_the_installed_release() -> None:
    result = _command("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"callbridge {importlib.metadata.version('callbridge')}"


def test_dial_to_a_base_url_names_the_call_start_url_it_may_have_meant() -> None:
    result = _command("dial", "http://127.0.0.1:9/")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].endswith("http://127.0.0.1:9/v1/calls")


def test_dial_to_a_call_start_url_that_fails_gives_no_hint() -> None:
    result = _command("dial", "http://127.0.0.1:9/v1/calls")
    assert result.returncode == 1
    assert "/v1/calls:" not in result.stderr


@pytest.mark.parametrize("value", ["proxy.example", "10.0.0.1,*", "10.0.0.0/33"])
def test_a_trusted_proxy_that_is_not_an_address_or_network_is_refused(value: str) -> None:
    _one_line_naming(_serve(forwarded_allow_ips=value), "CALLBRIDGE_FORWARDED_ALLOW_IPS")


@pytest.mark.parametrize(
    "url",
    [
        "redis://:hunter2secret/pass@127.0.0.1:1",
        "redis://:pa#hunter2secret@127.0.0.1:1",
        "rediss+cluster://user:hunter2secret?x@127.0.0.1:1",
    ],
)
def test_a_redis_url_with_an_unencoded_password_is_refused_without_quoting_it(url: str) -> None:
    result = _serve(queue=url)
    _one_line_naming(result, "CALLBRIDGE_QUEUE")
    assert "hunter2secret" not in result.stderr


@pytest.mark.parametrize("url", ["redis://127.0.0.1:1?foo=bar", "redis+cluster://h:1?foo=bar"])
def test_a_redis_url_option_redis_py_does_not_take_is_refused(url: str) -> None:
    assert "'foo'" in _one_line_naming(_serve(queue=url), "CALLBRIDGE_QUEUE")


def test_a_worker_refuses_a_redis_url_with_an_unencoded_password_without_quoting_it() -> None:
    result = _configured(["worker"], queue="redis://:s3cr3t:PW/rest@127.0.0.1:1")
    _one_line_naming(result, "CALLBRIDGE_QUEUE")
    assert "s3cr3t" not in result.stderr


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:1/abc",
        "redis://127.0.0.1:1/0abc",
        "rediss://127.0.0.1:1/3/4",
        "redis://127.0.0.1:1/-1",
        "redis://127.0.0.1:1/3?db=4",
    ],
)
def test_a_redis_url_whose_path_is_not_one_database_number_is_refused(url: str) -> None:
    assert "database" in _one_line_naming(_serve(queue=url), "CALLBRIDGE_QUEUE")


@pytest.mark.parametrize("url", ["unix://", "unix://tmp/redis.sock"])
def test_a_unix_url_without_an_absolute_socket_path_is_refused(url: str) -> None:
    assert "unix:///" in _one_line_naming(_serve(queue=url), "CALLBRIDGE_QUEUE")


@pytest.mark.parametrize("database", ["/99", "/?db=99"])
@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["worker"]])
def test_a_database_the_redis_does_not_have_is_a_configuration_error(
    redis_server: RedisServer, database: str, command: list[str]
) -> None:
    url = f"redis://127.0.0.1:{redis_server.port}{database}"
    line = _one_line_naming(_configured(command, queue=url), "CALLBRIDGE_QUEUE")
    assert "DB index is out of range" in line


@pytest.fixture
def redis_with_a_password(redis_server: RedisServer) -> RedisServer:
    with Redis(port=redis_server.port) as client:
        client.config_set("requirepass", "right-password-123")
    return redis_server


@pytest.mark.parametrize("scheme", ["redis", "redis+cluster"])
@pytest.mark.parametrize("password", ["", ":wrong-password-456@"])
@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["worker"]])
def test_a_redis_that_refuses_the_credentials_is_a_configuration_error(
    redis_with_a_password: RedisServer, scheme: str, password: str, command: list[str]
) -> None:
    url = f"{scheme}://{password}127.0.0.1:{redis_with_a_password.port}/0"
    line = _one_line_naming(_configured(command, queue=url), "CALLBRIDGE_QUEUE")
    assert "refuses the credentials" in line
    assert "wrong-password-456" not in line


def test_a_redis_url_naming_a_node_of_a_cluster_is_refused_with_the_cluster_scheme(
    redis_cluster: RedisClusterServers,
) -> None:
    url = f"redis://127.0.0.1:{redis_cluster.nodes[0].port}/0"
    assert "redis+cluster://" in _one_line_naming(_serve(queue=url), "CALLBRIDGE_QUEUE")


@pytest.mark.parametrize("command", ["serve", "provider"])
@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_a_port_option_out_of_range_is_a_usage_error(command: str, port: str) -> None:
    result = _configured([command, f"--port={port}"])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"callbridge {command}: error: argument --port: '{port}' is not a port (0 to 65535)"
    )


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["worker"]])
def test_a_cluster_url_naming_a_redis_without_cluster_mode_is_refused_with_the_plain_scheme(
    redis_server: RedisServer, command: list[str]
) -> None:
    url = f"redis+cluster://127.0.0.1:{redis_server.port}"
    line = _one_line_naming(_configured(command, queue=url), "CALLBRIDGE_QUEUE")
    assert "redis://" in line
