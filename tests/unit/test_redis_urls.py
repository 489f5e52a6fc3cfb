"""Redis URLs: `redis+cluster://` names a Redis Cluster by its nodes, as the `limits` library
writes it; the queue setting takes it and refuses a bad one without echoing it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.redis_urls import cluster_nodes_text, is_redis_url, parse_cluster_url, queue_kind
from service.settings import Settings, describe_invalid


def test_a_cluster_url_lists_its_nodes_with_their_ports() -> None:
    cluster = parse_cluster_url("redis+cluster://10.0.0.1:7000,10.0.0.2:7001")
    assert cluster is not None
    assert cluster.nodes == (("10.0.0.1", 7000), ("10.0.0.2", 7001))
    assert cluster.options == {}


def test_a_cluster_node_without_a_port_is_on_6379() -> None:
    cluster = parse_cluster_url("redis+cluster://cache.example/")
    assert cluster is not None
    assert cluster.nodes == (("cache.example", 6379),)


def test_a_tls_cluster_url_gives_credentials_tls_and_query_options() -> None:
    cluster = parse_cluster_url(
        "rediss+cluster://app:p%40ss@10.0.0.1:7000,10.0.0.2?ssl_cert_reqs=none&socket_timeout=5"
    )
    assert cluster is not None
    assert cluster.nodes == (("10.0.0.1", 7000), ("10.0.0.2", 6379))
    assert cluster.options == {
        "username": "app",
        "password": "p@ss",
        "ssl": True,
        "ssl_cert_reqs": "none",
        "socket_timeout": 5.0,
    }


def test_an_ipv6_node_is_written_back_in_brackets() -> None:
    cluster = parse_cluster_url("redis+cluster://[::1]:7000,127.0.0.1:7001")
    assert cluster is not None
    assert cluster.nodes == (("::1", 7000), ("127.0.0.1", 7001))
    assert cluster_nodes_text(cluster) == "[::1]:7000,127.0.0.1:7001"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+cluster://h:7000/1", "database 0"),
        ("redis+cluster://h:7000?db=1", "database 0"),
        ("redis+cluster://h:7000,:7001", "needs a host"),
        ("redis+cluster://h:notaport", "port from 1 to 65535"),
        ("redis+cluster://h:70000", "port from 1 to 65535"),
    ],
)
def test_a_bad_cluster_url_is_refused(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_cluster_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "redis+cluster://user:hunter2secret/x@h1:7000",
        "redis+cluster://user:pa#hunter2secret@h1:7000",
        "redis+cluster://user:hunter2secret?x@h1:7000",
    ],
)
def test_a_cluster_url_with_an_unencoded_password_is_refused_without_quoting_it(url: str) -> None:
    with pytest.raises(ValueError, match="host\\[:port\\]") as refused:
        parse_cluster_url(url)
    assert "hunter2secret" not in str(refused.value)


def test_a_single_redis_url_is_not_a_cluster() -> None:
    assert parse_cluster_url("redis://10.0.0.1:6379/0") is None


@pytest.mark.parametrize(
    ("url", "redis"),
    [
        ("redis://h", True),
        ("rediss://h", True),
        ("unix:///run/redis.sock", True),
        ("redis+cluster://h", True),
        ("rediss+cluster://h", True),
        ("memcached://h", False),
        ("redis+sentinel://h", False),
        ("redis", False),
    ],
)
def test_redis_urls_are_known_by_their_scheme(url: str, redis: bool) -> None:
    assert is_redis_url(url) is redis


def test_the_queue_setting_takes_a_cluster_url() -> None:
    url = "rediss+cluster://10.0.0.1:7000,10.0.0.2:7000"
    assert Settings(queue=url).queue == url


@pytest.mark.parametrize(
    "url",
    ["redis://h", "redis://h/", "redis://h:6380/15", "rediss://h/?db=3", "unix:///run/r.sock?db=3"],
)
def test_the_queue_setting_takes_a_database_by_its_path_or_by_db(url: str) -> None:
    assert Settings(queue=url).queue == url


def test_the_queue_setting_refuses_a_bad_cluster_url_without_echoing_it() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(queue="redis+cluster://app:hunter2@h:7000/3")
    described = describe_invalid(refused.value)
    assert described.startswith("CALLBRIDGE_QUEUE: ")
    assert "database 0" in described
    assert "hunter2" not in described


@pytest.mark.parametrize(
    ("queue", "kind"),
    [
        ("memory", "memory"),
        ("redis://:secret@redis.internal:6379/0", "redis"),
        ("rediss+cluster://user:secret@node-1:7000,node-2:7000", "redis cluster"),
    ],
)
def test_the_queue_is_named_by_its_kind_without_its_url(queue: str, kind: str) -> None:
    assert queue_kind(queue) == kind
