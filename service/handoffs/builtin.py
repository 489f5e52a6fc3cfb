"""The built-in offline handler: useful without any backend, and honest about what it is."""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from signaling.realtime import Delegation

_OPS: dict[type[ast.AST], object] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
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


def _evaluate(node: ast.AST) -> float:
    """Arithmetic only: numbers and + - * / with parentheses; anything else is refused."""
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        op = _OPS[type(node.op)]
        return op(_evaluate(node.left), _evaluate(node.right))  # type: ignore[operator,no-any-return]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        op = _OPS[type(node.op)]
        return op(_evaluate(node.operand))  # type: ignore[operator,no-any-return]
    raise ValueError("not arithmetic")


def _arithmetic(request: str) -> str | None:
    text = _digits(request.lower())
    for word, symbol in _WORDS.items():
        text = text.replace(word, symbol)
    for match in _EXPR.finditer(text):
        expr = match.group().strip()
        if not any(c.isdigit() for c in expr) or not any(c in "+-*/" for c in expr):
            continue
        try:
            value = _evaluate(ast.parse(expr, mode="eval"))
        except (SyntaxError, ValueError, ZeroDivisionError, OverflowError):
            continue
        shown = int(value) if value.is_integer() else round(value, 6)
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
