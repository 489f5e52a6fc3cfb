"""How callbridge talks to Redis: one client policy for the queue and the call directory.

A URL names one Redis (`redis://`, `rediss://` for TLS, `unix://`) or a Redis Cluster:
`redis+cluster://[user:password@]host[:port][,host[:port]...][?option=value...]`
(`rediss+cluster://` for TLS), the nodes to discover the cluster from (port 6379 unless
given), as the `limits` library writes it (https://limits.readthedocs.io/en/stable/storage.html).
A cluster has database 0 only; query options are redis-py's, as for `redis://`.

redis-py is imported only here, when a client is built (or when a failure of one is being
matched), so that an instance without Redis never loads it; the modules that use a client
import its types for annotations only.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeAlias

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

    RedisClient: TypeAlias = Redis | RedisCluster

CONNECT_TIMEOUT_S: Final = 2.0
# Added to the longest blocking read so that a silent network drop is noticed, not waited out.
REPLY_MARGIN_S: Final = 2.0
# Bounds of the reconnect backoff every Redis loop uses after a connection error.
BACKOFF_MIN_S: Final = 0.05
BACKOFF_MAX_S: Final = 2.0
DEFAULT_PORT: Final = 6379
_SCHEMES: Final = ("redis", "rediss", "unix")
_CLUSTER_SCHEMES: Final = ("redis+cluster", "rediss+cluster")
# As many as a single Redis' connection pool allows: every blocking read (an SSE follower, a
# queue consumer) holds a connection, and redis-py's cluster default of 100 a node would refuse
# the 101st.
_CLUSTER_MAX_CONNECTIONS: Final = 2**31
# Runs on the node holding KEYS[1], which it does not touch: that node's clock.
_TIME: Final = "return redis.call('TIME')"


def is_redis_url(url: str) -> bool:
    """Whether `url` names a Redis or a Redis Cluster by its scheme (see the module doc)."""
    scheme, separator, _ = url.partition("://")
    return bool(separator) and scheme in (*_SCHEMES, *_CLUSTER_SCHEMES)


@dataclass(frozen=True, slots=True)
class ClusterUrl:
    """A `redis+cluster://` URL taken apart: `nodes`, the (host, port) pairs to discover the
    cluster from, and `options`, the connection options the URL gives (credentials, `ssl`,
    query options) as redis-py's `RedisCluster` takes them."""

    nodes: tuple[tuple[str, int], ...]
    options: dict[str, Any]


_BAD_NODE: Final = (
    "a node is not host[:port] with a port from 1 to 65535 (a password holding '/', '?', "
    "'#' or '@' must be percent-encoded, RFC 3986 §3.2.1)"
)


def parse_cluster_url(url: str) -> ClusterUrl | None:
    """`url` taken apart when it names a Redis Cluster, else None. Raises `ValueError` when it
    names one badly (no host, a bad port, a database other than 0, an unknown option value)."""
    scheme, separator, _ = url.partition("://")
    if not separator or scheme not in _CLUSTER_SCHEMES:
        return None
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        raise ValueError(_BAD_NODE) from None
    userinfo, _, hosts = parts.netloc.rpartition("@")
    nodes = tuple(_node(host) for host in hosts.split(","))
    if parts.path not in ("", "/", "/0"):
        raise ValueError("a Redis Cluster has database 0 only")
    from redis.asyncio.connection import SSLConnection, parse_url

    tls = scheme == "rediss+cluster"
    credentials = f"{userinfo}@" if userinfo else ""
    host, port = nodes[0]
    # redis-py's own reading of the first node as a plain URL: credentials, TLS and options.
    plain = f"{'rediss' if tls else 'redis'}://{credentials}{_netloc(host, port)}/?{parts.query}"
    options: dict[str, Any] = dict(parse_url(plain))
    for single_only in ("host", "port", "db"):
        options.pop(single_only, None)
    if options.pop("connection_class", None) is SSLConnection:
        options["ssl"] = True
    return ClusterUrl(nodes, options)


def _node(netloc: str) -> tuple[str, int]:
    # The standard library's messages quote the text they could not read, which may be a
    # password that was not percent-encoded: only fixed messages leave here.
    try:
        parts = urllib.parse.urlsplit(f"//{netloc.strip()}")
        port = parts.port
    except ValueError:
        raise ValueError(_BAD_NODE) from None
    if not parts.hostname:
        raise ValueError("each node of a Redis Cluster URL needs a host")
    return parts.hostname, port or DEFAULT_PORT


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_redis_url(url: str) -> None:
    """Raise `ValueError` when the Redis or Redis Cluster `url` cannot be used: a host or port
    that cannot be read, or a query option redis-py does not take (which it would only refuse
    at the first connection). The messages never quote the URL, which may hold a password."""
    cluster = parse_cluster_url(url)
    if cluster is not None:
        options = cluster.options
    else:
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port
        except ValueError:
            raise ValueError(_BAD_NODE) from None
        if parts.scheme != "unix" and (not parts.hostname or port == 0):
            raise ValueError(_BAD_NODE)
        from redis.asyncio.connection import parse_url

        options = dict(parse_url(url))
    unknown = sorted(set(options) - _connection_options(cluster=cluster is not None))
    if unknown:
        raise ValueError(f"redis-py takes no option {unknown[0]!r} in a Redis URL's query")


def _connection_options(*, cluster: bool) -> set[str]:
    """What a Redis URL's options may name: the arguments of redis-py's connections and
    connection pool (and of its cluster client, for a cluster)."""
    import inspect

    from redis.asyncio.cluster import RedisCluster
    from redis.asyncio.connection import (
        AbstractConnection,
        Connection,
        ConnectionPool,
        SSLConnection,
        UnixDomainSocketConnection,
    )

    takers: list[type] = [
        AbstractConnection,
        Connection,
        SSLConnection,
        UnixDomainSocketConnection,
        ConnectionPool,
    ]
    if cluster:
        takers.append(RedisCluster)
    return {name for taker in takers for name in inspect.signature(taker).parameters} - {
        "args",
        "kwargs",
        "connection_kwargs",
    } | {"connection_class"}


def refusal(url: str) -> str | None:
    """Why the Redis `url` names cannot serve us, by its own answer to `INFO cluster` (a
    blocking probe at start-up, at most `CONNECT_TIMEOUT_S` per step): it refuses the
    credentials, or a `redis://` URL names a node of a Redis Cluster (whose other slots would
    answer MOVED forever). None when it serves, or cannot be reached now: an outage the
    service rides out. The reason never quotes the URL."""
    if parse_cluster_url(url) is not None:
        return None
    from redis import Redis
    from redis.exceptions import AuthenticationError, RedisError, ResponseError

    client = Redis.from_url(
        url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=CONNECT_TIMEOUT_S
    )
    try:
        info = client.info("cluster")
    except (AuthenticationError, ResponseError) as exc:
        # NOAUTH (a password is needed) and WRONGPASS both come as an error reply.
        if isinstance(exc, AuthenticationError) or "AUTH" in str(exc).split(" ", 1)[0]:
            return "Redis refused the credentials in CALLBRIDGE_QUEUE"
        return None
    except RedisError:
        return None
    finally:
        client.close()
    if info.get("cluster_enabled"):
        return (
            "CALLBRIDGE_QUEUE names a node of a Redis Cluster: name the cluster as "
            "redis+cluster://host:port (rediss+cluster:// for TLS)"
        )
    return None


def cluster_nodes_text(cluster: ClusterUrl) -> str:
    """The nodes as `host:port,host:port`, as a `redis+cluster://` URL lists them."""
    return ",".join(_netloc(host, port) for host, port in cluster.nodes)


def redis_client(url: str, *, longest_block_ms: int) -> RedisClient:
    """A client of the Redis or Redis Cluster `url` names, whose reads time out just after the
    longest blocking command we issue. Raises `ValueError` for a bad cluster URL.

    Client-side retries are off: our loops back off and resume on their own, and a retry would
    only make callers slower to notice an outage (and fall back, or report it). On a cluster,
    redis-py still follows MOVED and ASK redirections, and after a connection error it reads
    the cluster's layout again before the next command.
    """
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "socket_timeout": longest_block_ms / 1000 + REPLY_MARGIN_S,
        "retry": Retry(NoBackoff(), 0),
    }
    cluster = parse_cluster_url(url)
    if cluster is None:
        return Redis.from_url(url, **options)
    from redis.asyncio.cluster import ClusterNode

    from service.redis_cluster import InitializedRedisCluster

    return InitializedRedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in cluster.nodes],
        max_connections=_CLUSTER_MAX_CONNECTIONS,
        # The URL's options win, as with `Redis.from_url`.
        **{**options, **cluster.options},
    )


async def redis_now_ms(redis: RedisClient, key: str) -> int:
    """The clock (ms since the epoch) of the Redis node holding `key`: the one that stamps its
    stream ids and scores, whatever the clocks of instances and other nodes say. Raises as any
    command does (`redis_failures`)."""
    seconds, microseconds = await redis.eval(_TIME, 1, key)
    return int(seconds) * 1000 + int(microseconds) // 1000


def redis_failures() -> tuple[type[Exception], ...]:
    """What a command of a `redis_client` raises when it fails: `RedisError` (Redis
    unreachable, timed out, or refusing the command), `RedisClusterException` (no node of
    a cluster answers, or a slot has no node) or `OSError`, for `except`.

    Only code holding such a client meets these errors, so redis-py is loaded by then.
    """
    from redis.exceptions import RedisClusterException, RedisError

    return (RedisError, RedisClusterException, OSError)


def redis_unreachable() -> tuple[type[Exception], ...]:
    """The failures of `redis_failures` that mean Redis cannot be reached right now (or a
    cluster is failing over), as opposed to Redis refusing a command: worth waiting out."""
    from redis.exceptions import (
        ClusterError,
        ConnectionError,
        RedisClusterException,
        TimeoutError,
        TryAgainError,
    )

    return (
        ConnectionError,
        TimeoutError,
        ClusterError,
        TryAgainError,
        RedisClusterException,
        OSError,
    )
