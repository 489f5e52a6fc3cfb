"""Handlers of every kind run by the worker: progress, answers, failures and timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import aclosing
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response

from service.handoffs import HandoffEvent, MemoryQueue, Worker, load_handler
from signaling.realtime import Delegation, build_envelope
from tests.e2e.conftest import Serve
from tests.e2e.endpoints import json_endpoint
from tests.e2e.handlers import RAISED
from tests.e2e.processes import Process
from tests.e2e.redis_server import OpenQueue, RedisServer
from tests.e2e.waiting import until

pytestmark = pytest.mark.both_loops

REQUEST = "what is 2 plus 3"
TEXT_CAP = 200_000
REPO_ROOT = Path(__file__).resolve().parents[2]


def _delegation(tool_call_id: str = "call_1", request: str = REQUEST) -> Delegation:
    envelope = build_envelope(request, ())
    assert envelope is not None
    return Delegation(
        call_id="rtc_handlers",
        tool_call_id=tool_call_id,
        handoff_id=f"rtc_handlers:{tool_call_id}",
        item_id="item_1",
        request=request,
        transcript_delta=(),
        envelope=envelope,
        steering=False,
    )


async def _run(
    spec: str, *, timeout_s: float = 10.0, max_text_bytes: int = TEXT_CAP
) -> list[HandoffEvent]:
    """Put one handoff through a real worker; the events the owner receives, until the last."""
    queue = MemoryQueue(max_deliveries=1)
    handler = load_handler(spec, max_text_bytes=max_text_bytes)
    worker = Worker(queue, handler, name="w", timeout_s=timeout_s)
    worker.start()
    await queue.put(_delegation(), "owner")
    events: list[HandoffEvent] = []
    async with asyncio.timeout(timeout_s + 10):
        async for event in queue.events("owner"):
            events.append(event)
            if event.kind in ("result", "failed"):
                break
    await worker.stop()
    assert await queue.depth() == 0, "the job was acknowledged or given up"
    return events


async def test_python_handler_progress_lines_come_before_the_answer() -> None:
    events = await _run("service.handoffs.builtin:answer")
    assert [e.kind for e in events] == ["started", "progress", "result"]
    assert events[-1].text == "The result is 2 + 3 = 5."


async def test_command_handler_reads_the_envelope_and_reports_progress() -> None:
    script = (
        "import sys; envelope = sys.stdin.read(); "
        "print('progress: got', len(envelope), 'bytes', flush=True); "
        "print('answer:', envelope.count('<input>'))"
    )
    events = await _run(f'cmd:{sys.executable} -c "{script}"')
    assert [e.kind for e in events] == ["started", "progress", "result"]
    assert events[1].text.startswith("got ")
    assert events[-1].text == "answer: 1"


async def test_command_handler_that_exits_non_zero_gives_the_model_an_error() -> None:
    events = await _run("cmd:echo nope >&2; exit 3")
    assert events[-1].kind == "failed"
    assert "exited with 3" in events[-1].text
    assert "nope" in events[-1].text


@pytest.fixture
def pid_file(tmp_path: Path) -> Iterator[Path]:
    """A file a command's child writes its pid to; that process is killed after the test if it
    still runs."""
    path = tmp_path / "child.pid"
    yield path
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
        os.kill(int(path.read_text()), signal.SIGKILL)


def _running(pid_file: Path) -> bool:
    """Whether the process named in `pid_file` runs (a zombie waiting for its reaper does not)."""
    try:
        stat = Path(f"/proc/{int(pid_file.read_text())}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def test_command_handler_leaving_a_background_child_is_answered_when_it_exits(
    pid_file: Path,
) -> None:
    events = await _run(f"cmd:(sleep 3600 & echo $! > {pid_file}); echo answered", timeout_s=5)
    assert (events[-1].kind, events[-1].text) == ("result", "answered")


async def test_command_handler_exiting_non_zero_with_a_background_child_fails_with_its_status(
    pid_file: Path,
) -> None:
    events = await _run(f"cmd:(sleep 3600 & echo $! > {pid_file}); exit 3", timeout_s=5)
    assert events[-1].kind == "failed"
    assert "exited with 3" in events[-1].text


async def test_command_handlers_background_child_is_killed_once_it_has_answered(
    pid_file: Path,
) -> None:
    events = await _run(f"cmd:(sleep 3600 & echo $! > {pid_file}); echo answered", timeout_s=5)
    assert events[-1].kind == "result"
    await until(lambda: not _running(pid_file), timeout_s=5)


async def test_command_handler_whose_child_left_its_process_group_is_answered_without_it(
    pid_file: Path,
) -> None:
    daemon = f"setsid sh -c 'echo $$ > {pid_file}; exec sleep 3600' &"
    gone = f"while [ ! -s {pid_file} ]; do sleep 0.01; done"
    events = await _run(f"cmd:{daemon} {gone}; echo answered", timeout_s=5)
    assert (events[-1].kind, events[-1].text) == ("result", "answered")


async def test_handler_over_its_time_limit_gives_the_model_an_error() -> None:
    events = await _run("cmd:sleep 5", timeout_s=0.3)
    assert events[-1].kind == "failed"
    assert "did not answer within 0.3 s" in events[-1].text


async def test_command_handler_answering_one_line_over_64_kib_is_answered() -> None:
    events = await _run(f"cmd:{sys.executable} -c \"print('y' * 100_000)\"")
    assert events[-1].kind == "result"
    assert events[-1].text == "y" * 100_000


async def test_command_handler_answering_past_the_cap_is_stopped_and_its_answer_cut() -> None:
    endless = "import sys\nwhile True: sys.stdout.write('z' * 65536)"
    events = await _run(f'cmd:{sys.executable} -c "{endless}"', max_text_bytes=4096)
    assert events[-1].kind == "result"
    assert events[-1].text == "z" * 4097, "one byte past the cap, for the owner to mark"


async def test_command_handler_progress_past_the_cap_is_dropped() -> None:
    script = "for i in range(100): print('progress:', 'p' * 100)\nprint('done')"
    events = await _run(f'cmd:{sys.executable} -c "{script}"', max_text_bytes=1024)
    progress = [e.text for e in events if e.kind == "progress"]
    assert sum(len(p) for p in progress) <= 1024 + 101
    assert events[-1].text == "done"


async def test_http_handler_text_answer_is_read_no_further_than_the_cap(serve: Serve) -> None:
    app = FastAPI()

    @app.post("/handoff")
    async def handoff() -> PlainTextResponse:
        return PlainTextResponse("w" * 1_000_000)

    url = await serve(app)
    events = await _run(f"{url}/handoff", max_text_bytes=4096)
    assert events[-1].text == "w" * 4097


async def test_http_handler_receives_the_delegation_as_json(serve: Serve) -> None:
    received: list[dict[str, object]] = []
    app = FastAPI()

    @app.post("/handoff")
    async def handoff(request: Request) -> dict[str, str]:
        received.append(await request.json())
        return {"output": "from http"}

    url = await serve(app)
    events = await _run(f"{url}/handoff")
    assert events[-1].kind == "result"
    assert events[-1].text == "from http"
    assert received[0]["request"] == REQUEST
    assert str(received[0]["envelope"]).startswith("<realtime_delegation>")


async def test_http_handler_error_status_is_a_failure(serve: Serve) -> None:
    app = FastAPI()

    @app.post("/handoff")
    async def handoff() -> None:
        raise RuntimeError("broken backend")

    url = await serve(app)
    events = await _run(f"{url}/handoff")
    assert events[-1].kind == "failed"
    assert "500" in events[-1].text


async def test_http_handler_redirect_is_not_followed_but_fails_naming_its_status(
    serve: Serve,
) -> None:
    app = FastAPI()

    @app.post("/handoff")
    async def handoff() -> RedirectResponse:
        return RedirectResponse("/elsewhere", status_code=302)

    @app.post("/elsewhere")
    async def elsewhere() -> dict[str, str]:
        return {"output": "from elsewhere"}

    url = await serve(app)
    events = await _run(f"{url}/handoff")
    assert events[-1].kind == "failed"
    assert "302" in events[-1].text


async def test_http_handler_answering_no_content_gives_an_empty_answer(serve: Serve) -> None:
    app = FastAPI()

    @app.post("/handoff")
    async def handoff() -> Response:
        return Response(status_code=204)

    url = await serve(app)
    events = await _run(f"{url}/handoff")
    assert (events[-1].kind, events[-1].text) == ("result", "")


@pytest.mark.parametrize("content_type", ["Application/JSON", "application/vnd.example+json"])
async def test_http_handler_json_answer_is_read_as_json_in_any_json_media_type(
    serve: Serve, content_type: str
) -> None:
    app = FastAPI()

    @app.post("/handoff")
    async def handoff() -> Response:
        return Response(b'{"output": "from json"}', headers={"content-type": content_type})

    url = await serve(app)
    events = await _run(f"{url}/handoff")
    assert (events[-1].kind, events[-1].text) == ("result", "from json")


@pytest.mark.parametrize(
    ("charset", "body", "text"),
    [("latin-1", "é".encode("latin-1"), "é"), ("hex", b"6869", "6869"), ("no-such", b"hi", "hi")],
    ids=["known", "bytes-codec", "unknown"],
)
async def test_http_handler_text_answer_is_read_in_its_charset_or_else_utf_8(
    serve: Serve, charset: str, body: bytes, text: str
) -> None:
    app = FastAPI()

    @app.post("/handoff")
    async def handoff() -> Response:
        return Response(body, headers={"content-type": f"text/plain; charset={charset}"})

    url = await serve(app)
    events = await _run(f"{url}/handoff")
    assert (events[-1].kind, events[-1].text) == ("result", text)


async def test_a_failing_handoff_is_retried_before_it_is_given_up() -> None:
    queue = MemoryQueue(max_deliveries=2)
    attempts = 0

    async def flaky(delegation: Delegation) -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("transient")
        return "second time lucky"

    module = type(sys)("flaky_handlers")
    module.flaky = flaky  # type: ignore[attr-defined]
    sys.modules["flaky_handlers"] = module
    worker = Worker(queue, load_handler("flaky_handlers:flaky", max_text_bytes=TEXT_CAP), name="w")
    worker.start()
    await queue.put(_delegation(), "owner")
    async with asyncio.timeout(10):
        async for event in queue.events("owner"):
            if event.kind in ("result", "failed"):
                break
    await worker.stop()
    assert (event.kind, event.text, attempts) == ("result", "second time lucky", 2)


def test_a_malformed_handler_spec_is_refused() -> None:
    for spec in ("nocolon", "cmd:", "module:", ":func"):
        with pytest.raises(ValueError, match="handler"):
            load_handler(spec, max_text_bytes=TEXT_CAP)


async def _handing_off_to(url: str, count: int) -> Worker:
    """A started worker with a handler at `url`, once it has answered `count` handoffs."""
    queue = MemoryQueue(max_deliveries=1)
    worker = Worker(queue, load_handler(url, max_text_bytes=TEXT_CAP), name="w")
    worker.start()
    for n in range(count):
        await queue.put(_delegation(f"call_{n}"), "owner")
        async with asyncio.timeout(10):
            async for event in queue.events("owner"):
                if event.kind == "result":
                    break
    return worker


async def test_an_http_handlers_handoffs_share_one_connection() -> None:
    async with json_endpoint({"output": "ok"}) as (url, endpoint):
        worker = await _handing_off_to(url, 3)
        await worker.stop()
    assert endpoint.accepted == 1


async def test_stopping_a_worker_closes_its_http_handlers_connections() -> None:
    async with json_endpoint({"output": "ok"}) as (url, endpoint):
        worker = await _handing_off_to(url, 1)
        assert len(endpoint.open) == 1
        await worker.stop()
        await until(lambda: not endpoint.open, timeout_s=5)


# What a handler raises is its handoff's failure, nothing more


@pytest.fixture
def raising_worker(redis_server: RedisServer, tmp_path: Path) -> Iterator[Process]:
    """A `callbridge worker` process on the test's redis-server running
    `tests.e2e.handlers:raises`."""
    worker = Process(
        ["worker", "--grace", "1"],
        {
            "CALLBRIDGE_QUEUE": redis_server.url,
            "CALLBRIDGE_HANDLER": "tests.e2e.handlers:raises",
            # The tests package is not installed; this finds it wherever pytest started.
            "PYTHONPATH": str(REPO_ROOT),
        },
        tmp_path / "worker.log",
    ).start()
    yield worker
    worker.stop()
    # Shown by pytest only when the test failed.
    print(worker.output())


@pytest.mark.parametrize("raised", sorted(RAISED))
async def test_a_handler_raising_what_is_not_an_exception_fails_only_its_handoff(
    raising_worker: Process, open_queue: OpenQueue, raised: str
) -> None:
    owner = open_queue()
    await owner.put(_delegation("call_raises", request=raised), "owner")
    await owner.put(_delegation("call_after", request="still there?"), "owner")
    outcomes: dict[str, tuple[str, str]] = {}
    async with asyncio.timeout(30), aclosing(owner.events("owner")) as events:
        async for event in events:
            if event.kind in ("result", "failed"):
                outcomes[event.tool_call_id] = (event.kind, event.text)
                if len(outcomes) == 2:
                    break
    assert outcomes == {
        "call_raises": ("failed", f"the handler raised {raised}"),
        "call_after": ("result", "echo: still there?"),
    }
    assert raising_worker.proc is not None
    assert raising_worker.proc.poll() is None, "the worker goes on"
