"""Redis URLs: which name a Redis, which a Redis Cluster, and whether one can be used.

A URL names one Redis (`redis://`, `rediss://` for TLS, `unix://`; a database number as the
path of the first two or as `?db=`, as redis-py reads them:
https://redis.io/docs/latest/develop/clients/connection-urls/) or a Redis Cluster:
`redis+cluster://[user:password@]host[:port][,host[:port]...][?option=value...]`
(`rediss+cluster://` for TLS), the nodes to discover the cluster from (port 6379 unless
given), as the `limits` library writes it (https://limits.readthedocs.io/en/stable/storage.html).
A cluster has database 0 only; query options are redis-py's, as for `redis://`. redis-py is
imported only when a Redis URL is read.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import Any, Final

DEFAULT_PORT: Final = 6379
_SCHEMES: Final = ("redis", "rediss", "unix")
_CLUSTER_SCHEMES: Final = ("redis+cluster", "rediss+cluster")


def is_redis_url(url: str) -> bool:
    """Whether `url` names a Redis or a Redis Cluster by its scheme (see the module doc)."""
    scheme, separator, _ = url.partition("://")
    return bool(separator) and scheme in (*_SCHEMES, *_CLUSTER_SCHEMES)


def queue_kind(queue: str) -> str:
    """What `CALLBRIDGE_QUEUE` names, for an operator, without its URL (which may hold a
    password): `memory`, `redis` or `redis cluster`."""
    scheme, separator, _ = queue.partition("://")
    if not separator:
        return queue
    return "redis cluster" if scheme in _CLUSTER_SCHEMES else "redis"


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


# redis-py reads a redis:// path as a database number by dropping every '/' (`/3/4` is 34)
# and, when what is left is not a number, uses database 0 without a word.
_DATABASE_PATH: Final = re.compile(r"/?|/[0-9]+")
_BAD_DATABASE: Final = "the path of a Redis URL is one database number (/0, /1, ...) or nothing"
# redis-py ignores a unix:// URL's host: `unix://tmp/redis.sock` would be /redis.sock.
_BAD_SOCKET: Final = "a unix:// URL names its socket by an absolute path: unix:///path/to/socket"


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
    if options.pop("db", 0) != 0:
        raise ValueError("a Redis Cluster has database 0 only")
    for single_only in ("host", "port"):
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
    that cannot be read, a path that is not one database number (or a socket's absolute path,
    for `unix://`), the database named twice, or a query option redis-py does not take (which
    it would only refuse at the first connection). The messages never quote the URL, which may
    hold a password."""
    cluster = parse_cluster_url(url)
    if cluster is not None:
        options = cluster.options
    else:
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port
        except ValueError:
            raise ValueError(_BAD_NODE) from None
        if parts.scheme == "unix":
            if parts.hostname or not parts.path:
                raise ValueError(_BAD_SOCKET)
        elif not parts.hostname or port == 0:
            raise ValueError(_BAD_NODE)
        elif _DATABASE_PATH.fullmatch(parts.path) is None:
            raise ValueError(_BAD_DATABASE)
        elif parts.path.strip("/") and "db" in urllib.parse.parse_qs(parts.query):
            # redis-py would take ?db= and drop the path's without a word.
            raise ValueError("the database is named twice, by the path and by ?db=")
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


def cluster_nodes_text(cluster: ClusterUrl) -> str:
    """The nodes as `host:port,host:port`, as a `redis+cluster://` URL lists them."""
    return ",".join(_netloc(host, port) for host, port in cluster.nodes)
