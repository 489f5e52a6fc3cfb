"""A worker's default consumer name tells apart workers whose pid is the same, as it is (often 1)
in every container of a replicated worker."""

from __future__ import annotations

import os
import socket

from service.cli import default_worker_name


def test_the_default_worker_name_holds_the_host_name_and_the_pid() -> None:
    assert default_worker_name() == f"worker-{socket.gethostname()}-{os.getpid()}"
