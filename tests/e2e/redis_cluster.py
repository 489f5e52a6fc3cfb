"""A throwaway Redis Cluster for end-to-end tests, and a fixture that gives a test either Redis.

The cluster is three masters (no replicas, no persistence) on free ports, each in its own
directory, joined by `redis-cli --cluster create`. Making one takes seconds, so it is made once
per session and emptied before each test that uses it.

`shared_redis` is a single redis-server unless a test asks for the cluster with
`@pytest.mark.parametrize("shared_redis", ["single", "cluster"], indirect=True)`.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from tests.e2e.processes import free_port
from tests.e2e.redis_server import RedisServer

MASTERS = 3
_READY_TIMEOUT_S = 30.0
_CLI_TIMEOUT_S = 30.0


class RedisClusterServers:
    """`MASTERS` redis-servers in cluster mode on 127.0.0.1, serving all 16384 slots."""

    def __init__(self, cli: str, nodes: list[RedisServer]) -> None:
        self.cli = cli
        self.nodes = nodes

    @classmethod
    def spawn(cls, executable: str, cli: str, workdir: Path) -> RedisClusterServers:
        """Start the masters, join them, and return once every one says `cluster_state:ok`."""
        nodes: list[RedisServer] = []
        cluster = cls(cli, nodes)
        try:
            for n in range(MASTERS):
                directory = workdir / f"node-{n}"
                directory.mkdir()
                options = (
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    # The bus port is given: by default it is the port plus 10000, which a
                    # free port above 55535 cannot have.
                    "--cluster-port",
                    str(free_port()),
                )
                nodes.append(RedisServer.spawn(executable, directory, options))
            addresses = [f"127.0.0.1:{node.port}" for node in nodes]
            cluster._cli("--cluster", "create", *addresses, "--cluster-yes")
            cluster._wait_until_ready()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    @property
    def url(self) -> str:
        """The `redis+cluster://` URL naming every master."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def client(self) -> RedisCluster:
        """A client for looking at keys and streams (replies decoded)."""
        startup = [ClusterNode("127.0.0.1", node.port) for node in self.nodes]
        return RedisCluster(startup_nodes=startup, decode_responses=True)

    def flush(self) -> None:
        """Empty every master."""
        for node in self.nodes:
            self._cli("-p", str(node.port), "flushall")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def _cli(self, *args: str) -> str:
        done = subprocess.run(
            [self.cli, *args], capture_output=True, text=True, timeout=_CLI_TIMEOUT_S, check=True
        )
        return done.stdout

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT_S
        for node in self.nodes:
            while "cluster_state:ok" not in self._cli("-p", str(node.port), "cluster", "info"):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the cluster is not ready in {_READY_TIMEOUT_S:g} s")
                time.sleep(0.05)


@pytest.fixture(scope="session")
def redis_cluster_servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RedisClusterServers]:
    """The session's Redis Cluster; skips when redis-server or redis-cli is not installed."""
    executable, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if executable is None or cli is None:
        pytest.skip("redis-server and redis-cli are needed for a Redis Cluster")
    cluster = RedisClusterServers.spawn(executable, cli, tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_cluster(redis_cluster_servers: RedisClusterServers) -> RedisClusterServers:
    """The session's Redis Cluster, emptied for this test."""
    redis_cluster_servers.flush()
    return redis_cluster_servers


@dataclass(frozen=True)
class SharedRedis:
    """The Redis the parts under test share: its URL, and a client for looking at keys."""

    kind: str
    url: str
    client: Redis | RedisCluster


@pytest.fixture
async def shared_redis(request: pytest.FixtureRequest) -> AsyncIterator[SharedRedis]:
    """A private redis-server (`single`, the default) or the emptied session cluster
    (`cluster`), as the test's indirect parameter says."""
    kind = getattr(request, "param", "single")
    if kind == "single":
        server: RedisServer = request.getfixturevalue("redis_server")
        async with Redis.from_url(server.url, decode_responses=True) as client:
            yield SharedRedis(kind, server.url, client)
        return
    cluster: RedisClusterServers = request.getfixturevalue("redis_cluster")
    async with cluster.client() as cluster_client:
        yield SharedRedis(kind, cluster.url, cluster_client)
