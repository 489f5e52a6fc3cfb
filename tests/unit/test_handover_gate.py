"""The handover gate: inputs one at a time, held while paused, turned away once detached."""

from __future__ import annotations

import asyncio

from service.calls.gate import HandoverGate


async def _input_waiting_at_a_paused_gate(
    taken: list[str],
) -> tuple[HandoverGate, asyncio.Task[bool]]:
    gate = HandoverGate()

    async def take() -> None:
        taken.append("input")

    await gate.pause()
    waiting = asyncio.create_task(gate.run(take))
    await asyncio.sleep(0.01)
    return gate, waiting


async def test_an_input_waits_while_the_gate_is_paused_and_is_taken_on_resume() -> None:
    taken: list[str] = []
    gate, waiting = await _input_waiting_at_a_paused_gate(taken)
    held = list(taken)
    gate.resume()
    assert await waiting is True
    assert (held, taken) == ([], ["input"])


async def test_an_input_waiting_when_the_call_is_handed_over_is_turned_away() -> None:
    taken: list[str] = []
    gate, waiting = await _input_waiting_at_a_paused_gate(taken)
    await gate.detach()
    assert await waiting is False
    assert taken == []
