"""How callbridge talks to Redis: one client policy for the queue, the call directory and the
rate limits.

The URLs it takes are read by `service.redis_urls`.

redis-py is imported only here, when a client is built (or when a failure of one is being
matched), so that an instance without Redis never loads it; the modules that use a client
import its types for annotations only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from service.redis_urls import ClusterUrl, parse_cluster_url

if TYPE_CHECKING:
    from redis import Redis as SyncRedis
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

    RedisClient: TypeAlias = Redis | RedisCluster

CONNECT_TIMEOUT_S: Final = 2.0
# Added to the longest blocking read so that a silent network drop is noticed, not waited out.
REPLY_MARGIN_S: Final = 2.0
# Bounds of the reconnect backoff every Redis loop uses after a connection error.
BACKOFF_MIN_S: Final = 0.05
BACKOFF_MAX_S: Final = 2.0
# As many as a single Redis' connection pool allows: every blocking read (an SSE follower, a
# queue consumer) holds a connection, and redis-py's cluster default of 100 a node would refuse
# the 101st.
_CLUSTER_MAX_CONNECTIONS: Final = 2**31
# Runs on the node holding KEYS[1], which it does not touch: that node's clock.
_TIME: Final = "return redis.call('TIME')"
NOW_MS_LUA: Final = """
local function now_ms()
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""
"""A Lua function for scripts: the clock of the node running the script, in ms since the epoch,
as `redis_now_ms` reads it (a whole number, exact as a double, and so as an argument)."""

CREDENTIALS_REFUSED: Final = "Redis refuses the credentials in CALLBRIDGE_QUEUE"
"""What an operator is told when Redis answers NOAUTH or WRONGPASS: it names the setting to fix,
never its value."""


def refusal(url: str) -> str | None:
    """Why the Redis or Redis Cluster `url` names cannot serve us, by its own answers to the
    connection's handshake and to `INFO cluster` (a blocking probe at start-up, at most
    `CONNECT_TIMEOUT_S` per step; of a cluster, its nodes are asked in turn until one answers):
    it refuses the credentials, or what the URL asks of the connection (a database it does not
    have, a protocol or client name it does not take), or a `redis://` URL names a node of a
    Redis Cluster (whose other slots would answer MOVED forever), or a cluster URL names a Redis
    that is not one (which would answer no cluster command, ever). None when it serves, or
    cannot be reached now: an outage the service rides out. The reason never quotes the URL."""
    from redis.exceptions import RedisError

    cluster = parse_cluster_url(url)
    for client in _probes(url, cluster):
        try:
            answer = _probe(client)
        except RedisError:
            continue
        if isinstance(answer, str):
            return answer
        if answer and cluster is None:
            return (
                "CALLBRIDGE_QUEUE names a node of a Redis Cluster: name the cluster as "
                "redis+cluster://host:port (rediss+cluster:// for TLS)"
            )
        if not answer and cluster is not None:
            return (
                "CALLBRIDGE_QUEUE names a Redis Cluster, but the Redis it names runs without "
                "cluster mode: name it as redis://host:port (rediss:// for TLS)"
            )
        return None
    return None


def _probes(url: str, cluster: ClusterUrl | None) -> Iterator[SyncRedis]:
    """Blocking clients for `refusal`: of the Redis `url` names, or of each node of `cluster`
    in turn, with what the URL asks of a connection (credentials, TLS, options)."""
    import inspect

    from redis import Redis

    timeouts = {"socket_connect_timeout": CONNECT_TIMEOUT_S, "socket_timeout": CONNECT_TIMEOUT_S}
    if cluster is None:
        yield Redis.from_url(url, **timeouts)
        return
    # Options of the cluster client alone (`read_from_replicas`...) are not a connection's.
    taken = inspect.signature(Redis).parameters
    options = {name: value for name, value in cluster.options.items() if name in taken}
    for host, port in cluster.nodes:
        yield Redis(host=host, port=port, **{**options, **timeouts})


def _probe(client: SyncRedis) -> str | bool:
    """Why the Redis `client` connects to refuses us, or else whether it runs in cluster mode.
    Raises `RedisError` when it cannot be reached (or refuses our user a command: NOPERM,
    which the service reports as it runs)."""
    from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError

    try:
        # Connecting runs the handshake the URL asks for (AUTH or HELLO, CLIENT SETNAME,
        # SELECT); Redis refusing one of them is refused at every connection, not an outage.
        try:
            client.connection_pool.release(client.connection_pool.get_connection())
        except ResponseError as exc:
            if isinstance(exc, NoPermissionError):
                raise
            # Redis' text says what it refuses ("DB index is out of range"), nothing secret.
            return f"Redis refuses to open a connection as CALLBRIDGE_QUEUE asks ({exc})"
        return bool(client.info("cluster").get("cluster_enabled"))
    except AuthenticationError:
        # redis-py raises it for NOAUTH (a password is needed) and WRONGPASS alike.
        return CREDENTIALS_REFUSED
    finally:
        client.close()


def redis_client(url: str, *, longest_block_ms: int) -> RedisClient:
    """A client of the Redis or Redis Cluster `url` names, whose reads time out just after the
    longest blocking command we issue. Raises `ValueError` for a bad cluster URL.

    Client-side retries are off: our loops back off and resume on their own, and a retry would
    only make callers slower to notice an outage (and fall back, or report it). On a cluster,
    redis-py still follows MOVED and ASK redirections, and after a connection error it reads
    the cluster's layout again before the next command.
    """
    cluster = parse_cluster_url(url)
    if cluster is None:
        return single_redis_client(url, longest_block_ms=longest_block_ms)
    from redis.asyncio.cluster import ClusterNode

    from service.redis_cluster import InitializedRedisCluster

    return InitializedRedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in cluster.nodes],
        max_connections=_CLUSTER_MAX_CONNECTIONS,
        # The URL's options win, as with `Redis.from_url`.
        **{**_client_options(longest_block_ms), **cluster.options},
    )


def single_redis_client(url: str, *, longest_block_ms: int) -> Redis:
    """`redis_client` for a URL naming one Redis (`redis://`, `rediss://`, `unix://`), as
    redis-py reads it: the port defaults to 6379 and the database to 0."""
    from redis.asyncio import Redis

    return Redis.from_url(url, **_client_options(longest_block_ms))


def _client_options(longest_block_ms: int) -> dict[str, Any]:
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return {
        "decode_responses": True,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "socket_timeout": longest_block_ms / 1000 + REPLY_MARGIN_S,
        "retry": Retry(NoBackoff(), 0),
    }


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


def redis_waited_out() -> tuple[type[Exception], ...]:
    """The failures of `redis_failures` worth waiting out, as opposed to Redis refusing one
    command: Redis cannot be reached right now (or a cluster is failing over, or moving a slot:
    a MOVED or ASK that a transaction meets is raised, the client retrying nothing, once the
    client has learnt the slot's new node; a READONLY from a primary just demoted), or it
    refuses our credentials or our user's permissions (`redis_refusal`), which an operator may
    put right while we wait."""
    from redis.exceptions import (
        AskError,
        ClusterError,
        ConnectionError,
        NoPermissionError,
        ReadOnlyError,
        RedisClusterException,
        TimeoutError,
        TryAgainError,
    )

    # `ConnectionError` covers `AuthenticationError` (NOAUTH, WRONGPASS) and
    # `AuthorizationError`, and `BusyLoadingError` (LOADING); `AskError` covers `MovedError`.
    return (
        ConnectionError,
        AskError,
        ReadOnlyError,
        TimeoutError,
        ClusterError,
        TryAgainError,
        NoPermissionError,
        RedisClusterException,
        OSError,
    )


def redis_refusal(exc: BaseException) -> str | None:
    """Why Redis refuses us, when `exc` (or the error it was raised from) says it does: our
    credentials (NOAUTH, WRONGPASS) or what our ACL user may run (NOPERM). A sentence naming the
    setting, never the URL or a password; None for any other failure (an outage, a refused
    command).

    Not an outage: nothing that needs Redis works until an operator puts it right
    (https://redis.io/docs/latest/operate/oss_and_stack/management/security/acl/)."""
    from redis.exceptions import AuthenticationError, AuthorizationError, NoPermissionError

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, AuthenticationError):
            return CREDENTIALS_REFUSED
        if isinstance(seen, AuthorizationError | NoPermissionError):
            # Redis' text names the user and the command it may not run, nothing secret.
            return f"Redis refuses a command to the user in CALLBRIDGE_QUEUE ({seen})"
        seen = seen.__cause__
    return None
