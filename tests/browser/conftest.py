"""Headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, and the service it calls.

The browser tests are skipped when Chromium or Playwright is missing or Chromium cannot start,
except under CI (`CI=true`), where that is a failure: `scripts/ensure_system_packages.sh`
installs it.
No browser is ever downloaded: Playwright only drives the system Chromium.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

if TYPE_CHECKING:
    from playwright.async_api import Browser

CHROMIUM = Path("/usr/bin/chromium")
REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "artifacts" / "browser"

# Fake, auto-granted microphone; no GPU, sandbox, QUIC or background traffic.
CHROMIUM_ARGS: tuple[str, ...] = (
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

LaunchBrowser = Callable[..., Awaitable["Browser"]]
"""`await browser(fake_audio=None, extra_args=())`: a new Chromium; `fake_audio` is a WAV file
the fake microphone plays once (then silence) instead of its default beep; `extra_args` are more
command-line switches."""


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it under CI, where the browser tests must run."""
    if _in_ci():
        pytest.fail(f"{reason} (CI=true: browser tests may not be skipped)", pytrace=False)
    pytest.skip(reason)


def chromium_arguments(fake_audio: Path | None = None) -> list[str]:
    """The command-line switches for Chromium, with an optional WAV for the fake microphone."""
    args = list(CHROMIUM_ARGS)
    if fake_audio is not None:
        if not fake_audio.is_file():
            raise FileNotFoundError(f"fake microphone audio {fake_audio} does not exist")
        args.append(f"--use-file-for-fake-audio-capture={fake_audio}%noloop")
    return args


def _chromium_problem() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing; run scripts/ensure_system_packages.sh"
    try:
        done = subprocess.run(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{CHROMIUM} does not run: {exc}"
    if done.returncode != 0:
        return f"{CHROMIUM} --version failed: {(done.stderr or done.stdout).strip()[:500]}"
    return None


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    """Path of a Chromium that runs (and of Playwright being importable)."""
    problem = _chromium_problem()
    if problem is not None:
        unavailable(problem)
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        unavailable("Playwright is not installed: pip install 'playwright>=1.45,<2'")
    return CHROMIUM


@pytest.fixture
async def browser(chromium_path: Path, service_url: str) -> AsyncIterator[LaunchBrowser]:
    """A factory of headless Chromium browsers, all closed after the test.

    It depends on `service_url` so that the browsers close first: the service's shutdown waits
    for the page's open event stream.
    """
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import async_playwright

    launched: list[Browser] = []
    async with async_playwright() as playwright:

        async def launch(fake_audio: Path | None = None, extra_args: Sequence[str] = ()) -> Browser:
            args = [*chromium_arguments(fake_audio), *extra_args]
            try:
                instance = await playwright.chromium.launch(
                    executable_path=str(chromium_path),
                    headless=True,
                    args=args,
                    timeout=30_000,
                )
            except PlaywrightError as exc:
                unavailable(f"Chromium did not start: {exc.message.splitlines()[0]}")
            launched.append(instance)
            return instance

        try:
            yield launch
        finally:
            for instance in reversed(launched):
                await instance.close()


@contextlib.asynccontextmanager
async def page_service(**overrides: Any) -> AsyncIterator[str]:
    """The callbridge service (embedded local provider and worker) on a loopback port, with
    `overrides` to its settings; its base URL."""
    from service.app import create_app
    from service.embedded import EmbeddedServer
    from service.settings import Settings

    # Pinned so that a developer's CALLBRIDGE_* environment cannot point the test elsewhere.
    settings = Settings(
        port=0,
        provider="local",
        provider_url=None,
        queue="memory",
        embedded_worker=True,
        handler="service.handoffs.builtin:answer",
        **overrides,
    )
    server = EmbeddedServer(create_app(settings))
    await server.start()
    try:
        yield server.url
    finally:
        await server.stop()


@pytest.fixture
async def service_url() -> AsyncIterator[str]:
    """The callbridge service of `page_service`, as it is by default."""
    async with page_service() as url:
        yield url


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """`artifacts/browser/` at the repository root (screenshots), created on demand."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
