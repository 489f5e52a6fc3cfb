"""The built-in offline handler: useful without any backend, and honest about what it is."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from signaling.realtime import Delegation

# Binary operators by symbol: (precedence, function). Unary signs bind tighter than all of them.
_BINARY: dict[str, tuple[int, Callable[[float, float], float]]] = {
    "+": (1, operator.add),
    "-": (1, operator.sub),
    "*": (2, operator.mul),
    "/": (2, operator.truediv),
}
_UNARY: dict[str, Callable[[float], float]] = {"u+": operator.pos, "u-": operator.neg}
_UNARY_PRECEDENCE = 3
_TOKEN = re.compile(r"\s*(?:(\d+\.?\d*|\.\d+)|(\S))")
# Past this, the expression is shown shortened in the answer (the result is still computed).
_SHOWN_EXPRESSION_CHARS = 120
_WORDS = {"plus": "+", "minus": "-", "times": "*", "multiplied by": "*", "divided by": "/"}
_UNITS = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
)
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_NUMBER_WORD = re.compile(
    r"\b(?:("
    + "|".join(_TENS)
    + r")(?:[\s-]+("
    + "|".join(_UNITS[1:10])
    + r"))?|("
    + "|".join(_UNITS)
    + r"))\b"
)


def _digits(text: str) -> str:
    """Spoken numbers below 100 as digits: speech recognisers write "two plus three"."""

    def value(match: re.Match[str]) -> str:
        tens, unit, single = match.groups()
        if single is not None:
            return str(_UNITS.index(single))
        return str((_TENS.index(tens) + 2) * 10 + (_UNITS.index(unit) if unit else 0))

    return _NUMBER_WORD.sub(value, text)


_EXPR = re.compile(r"[-+*/().\d\s]{3,}")


def _evaluate(expr: str) -> float:
    """Arithmetic only: numbers and + - * / with parentheses; anything else is refused.

    Operator precedence parsing with explicit stacks, so the work is linear in the expression
    and no length or nesting depth can exhaust the interpreter's stack. Raises ValueError for
    what is not such an expression, ZeroDivisionError, and OverflowError for a result that is
    not a finite number.
    """
    values: list[float] = []
    ops: list[str] = []
    expect_operand = True

    def reduce_top() -> None:
        op = ops.pop()
        if op in _UNARY:
            values.append(_UNARY[op](values.pop()))
        else:
            right, left = values.pop(), values.pop()
            values.append(_BINARY[op][1](left, right))

    def precedence(op: str) -> int:
        return _UNARY_PRECEDENCE if op in _UNARY else _BINARY[op][0]

    for number, symbol in _TOKEN.findall(expr):
        if number:
            if not expect_operand:
                raise ValueError("two numbers in a row")
            values.append(float(number))
            expect_operand = False
        elif symbol == "(" and expect_operand:
            ops.append("(")
        elif symbol == ")" and not expect_operand:
            while ops and ops[-1] != "(":
                reduce_top()
            if not ops:
                raise ValueError("unbalanced parenthesis")
            ops.pop()
        elif symbol in ("+", "-") and expect_operand:
            ops.append("u" + symbol)
        elif symbol in _BINARY and not expect_operand:
            while ops and ops[-1] != "(" and precedence(ops[-1]) >= _BINARY[symbol][0]:
                reduce_top()
            ops.append(symbol)
            expect_operand = True
        else:
            raise ValueError(f"unexpected {symbol!r}")
    if expect_operand:
        raise ValueError("incomplete expression")
    while ops:
        if ops[-1] == "(":
            raise ValueError("unbalanced parenthesis")
        reduce_top()
    if not math.isfinite(values[0]):
        raise OverflowError("the result is not a finite number")
    return values[0]


def _arithmetic(request: str) -> str | None:
    text = _digits(request.lower())
    for word, symbol in _WORDS.items():
        text = text.replace(word, symbol)
    for match in _EXPR.finditer(text):
        expr = match.group().strip()
        if not any(c.isdigit() for c in expr) or not any(c in "+-*/" for c in expr):
            continue
        try:
            value = _evaluate(expr)
        except (ValueError, ZeroDivisionError, OverflowError):
            continue
        shown = int(value) if value.is_integer() else round(value, 6)
        if len(expr) > _SHOWN_EXPRESSION_CHARS:
            expr = f"{expr[: _SHOWN_EXPRESSION_CHARS - 1]}…"
        return f"{expr} = {shown}"
    return None


def compose_answer(request: str, now: datetime) -> str:
    """The offline answer to a request: arithmetic, the time, or an acknowledgement."""
    computed = _arithmetic(request)
    if computed is not None:
        return f"The result is {computed}."
    lowered = request.lower()
    if "time" in lowered or "date" in lowered:
        return f"It is {now:%H:%M} UTC on {now:%A, %d %B %Y}."
    return f"The background agent received your request: {request.strip()!r}. Done."


async def answer(delegation: Delegation) -> AsyncIterator[str]:
    """Yield one progress line, then the answer."""
    yield f"Working on: {delegation.request.strip()[:200]}"
    yield compose_answer(delegation.request, datetime.now(UTC))
