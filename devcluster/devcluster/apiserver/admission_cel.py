"""The CEL environment of admission policies: compile once, evaluate per request.

cel-expr-python (cel-cpp) with the optional and strings extensions gives what the
Kubernetes policy environment has that policies commonly use: has(), in, size(), the
all/exists/filter/map macros, startsWith/matches, `?.`/`[?k]` with orValue(), and the
strings library (lowerAscii, split, ...). Kubernetes' own libraries (authorizer, quantity,
url, ip, isSorted, ...) are not declared: an expression using them does not compile.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cel_expr_python import cel  # type: ignore[import-untyped]
from cel_expr_python.ext import ext_optional, ext_strings  # type: ignore[import-untyped]

# What every expression may name, as the kube-apiserver declares it (params stays null:
# paramKind is not supported).
VARIABLES = ("object", "oldObject", "request", "namespaceObject", "params", "variables")


class CelError(Exception):
    """A compile or evaluation error, its message cleaned of the engine's status codes."""


@dataclass(frozen=True)
class Program:
    source: str
    expression: Any  # cel.Expression (the wrapper's stubs are not typed for mypy)
    returns: str  # the checked return type's name: BOOL, STRING, DYN, ...


@functools.cache
def _environment() -> Any:
    return cel.NewEnv(
        variables=dict.fromkeys(VARIABLES, cel.Type.DYN),
        extensions=[ext_optional.ExtOptional(), ext_strings.ExtStrings()],
    )


_STATUS_PREFIX = re.compile(r"^[A-Z_]+: ")
_STATUS_SUFFIX = re.compile(r" \[[A-Z_]+\]$")


def _clean(message: str) -> str:
    return _STATUS_SUFFIX.sub("", _STATUS_PREFIX.sub("", message.strip()))


@functools.lru_cache(maxsize=1024)
def compile_expression(source: str) -> Program:
    """Compile and type-check; a CelError carries the engine's message (with the
    line and column) when the expression does not compile."""
    try:
        expression = _environment().compile(source)
    except RuntimeError as error:
        raise CelError(f"compilation failed: {_clean(str(error))}") from None
    return Program(source, expression, expression.return_type().name())


def evaluate(program: Program, activation: Mapping[str, Any]) -> Any:
    """The plain Python value of the expression, or CelError on a runtime error (a missing
    key, a division by zero, a null dereferenced)."""
    try:
        result = program.expression.eval(data=dict(activation))
    except (RuntimeError, OverflowError, TypeError, ValueError) as error:
        # The engine raises these for values it cannot take in (an integer beyond
        # 64 bits, say): an evaluation error like any other, never a 500.
        raise CelError(_clean(str(error))) from None
    if result.type() == cel.Type.ERROR:
        raise CelError(_clean(str(result.value())))
    return result.plain_value()
