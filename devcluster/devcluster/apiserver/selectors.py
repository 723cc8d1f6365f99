"""Label and field selectors with kube-apiserver's syntax and matching rules."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from devcluster.apiserver.status import ApiError, bad_request

_OPERATOR_CHARS = "=!<>(),"
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def valid_label_key(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _LABEL_PREFIX.match(prefix)):
        return False
    return bool(_LABEL_NAME.match(name))


def valid_label_value(value: str) -> bool:
    return len(value) <= 63 and bool(_LABEL_VALUE.match(value))


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # in, notin, =, !=, exists, !, gt, lt
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        match self.operator:
            case "exists":
                return present
            case "!":
                return not present
            case "=" | "in":
                return present and value in self.values
            case "!=" | "notin":
                # As in kube-apiserver: objects without the key match a negative requirement.
                return not present or value not in self.values
            case "gt" | "lt":
                if value is None:
                    return False
                try:
                    number = int(value)
                except ValueError:
                    return False
                bound = int(self.values[0])
                return number > bound if self.operator == "gt" else number < bound
        return False

    def text(self) -> str:
        match self.operator:
            case "exists":
                return self.key
            case "!":
                return f"!{self.key}"
            case "in" | "notin":
                return f"{self.key} {self.operator} ({','.join(self.values)})"
            case "gt" | "lt":
                return f"{self.key}{'>' if self.operator == 'gt' else '<'}{self.values[0]}"
        return f"{self.key}{self.operator}{self.values[0]}"


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(requirement.matches(labels) for requirement in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def text(self) -> str:
        """The selector in the query syntax, e.g. "app=x,tier in (a,b),!legacy"."""
        return ",".join(requirement.text() for requirement in self.requirements)


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char.isspace():
            i += 1
        elif text.startswith(("==", "!="), i):
            tokens.append(text[i : i + 2])
            i += 2
        elif char in _OPERATOR_CHARS:
            tokens.append(char)
            i += 1
        else:
            start = i
            while i < len(text) and not text[i].isspace() and text[i] not in _OPERATOR_CHARS:
                i += 1
            tokens.append(text[start:i])
    return tokens


class _LabelParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.position = 0

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> str | None:
        lexeme = self.peek()
        self.position += 1
        return lexeme

    def fail(self, message: str) -> ApiError:
        return bad_request(f"unable to parse requirement: {message}")

    def identifier(self, what: str) -> str:
        lexeme = self.take()
        if lexeme is None or (lexeme in _OPERATOR_CHARS or lexeme in ("==", "!=")):
            raise self.fail(f"found '{lexeme or ''}', expected: {what}")
        return lexeme

    def parse(self) -> LabelSelector:
        requirements: list[Requirement] = []
        if not self.tokens:
            return LabelSelector(())
        while True:
            requirements.append(self.requirement())
            lexeme = self.take()
            if lexeme is None:
                break
            if lexeme != ",":
                raise self.fail(f"found '{lexeme}', expected: ',' or 'end of string'")
        return LabelSelector(tuple(requirements))

    def requirement(self) -> Requirement:
        if self.peek() == "!":
            self.take()
            key = self.check_key(self.identifier("identifier after '!'"))
            return Requirement(key, "!")
        key = self.check_key(self.identifier("identifier"))
        lexeme = self.peek()
        if lexeme is None or lexeme == ",":
            return Requirement(key, "exists")
        self.take()
        if lexeme in ("=", "==", "!="):
            value = ""
            if self.peek() not in (None, ","):
                value = self.identifier("value")
            return Requirement(key, "!=" if lexeme == "!=" else "=", (self.check_value(value),))
        if lexeme in ("in", "notin"):
            return Requirement(key, lexeme, self.value_set())
        if lexeme in (">", "<"):
            value = self.identifier("integer value")
            if not re.fullmatch(r"-?\d+", value):
                raise self.fail(f"for 'Gt', 'Lt' operators, the value must be an integer: {value}")
            return Requirement(key, "gt" if lexeme == ">" else "lt", (value,))
        raise self.fail(f"found '{lexeme}', expected: '=', '!=', '==', 'in', notin'")

    def value_set(self) -> tuple[str, ...]:
        if self.take() != "(":
            raise self.fail("found '', expected: '('")
        values: list[str] = []
        current = ""
        while True:
            lexeme = self.take()
            if lexeme is None:
                raise self.fail("found '', expected: ')'")
            if lexeme in (",", ")"):
                values.append(self.check_value(current))
                current = ""
                if lexeme == ")":
                    break
            elif current:
                raise self.fail(f"found '{lexeme}', expected: ',' or ')'")
            else:
                current = lexeme
        if values == [""]:
            raise self.fail("for 'in', 'notin' operators, values set can't be empty")
        return tuple(values)

    def check_key(self, key: str) -> str:
        if not valid_label_key(key):
            raise self.fail(
                f'key: Invalid value: "{key}": name part must consist of '
                "alphanumeric characters, '-', '_' or '.'"
            )
        return key

    def check_value(self, value: str) -> str:
        if not valid_label_value(value):
            raise self.fail(
                f'values[0][{value}]: Invalid value: "{value}": a valid label must be an '
                "empty string or consist of alphanumeric characters, '-', '_' or '.'"
            )
        return value


def parse_label_selector(text: str | None) -> LabelSelector:
    return _LabelParser(text or "").parse()


# LabelSelector objects (spec.selector of workloads) ---------------------------------------

_OBJECT_OPERATORS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}


def selector_object_causes(selector: Mapping[str, Any], field: str) -> list[tuple[str, str]]:
    """What is wrong with a metav1.LabelSelector object, as kube-apiserver words it."""
    causes: list[tuple[str, str]] = []
    for index, expression in enumerate(selector.get("matchExpressions") or []):
        where = f"{field}.matchExpressions[{index}]"
        operator = _OBJECT_OPERATORS.get(expression.get("operator"))
        if operator is None:
            supported = ", ".join(f'"{name}"' for name in _OBJECT_OPERATORS)
            causes.append(
                (
                    f"{where}.operator",
                    f'Unsupported value: "{expression.get("operator")}": '
                    f"supported values: {supported}",
                )
            )
        elif operator in ("in", "notin") and not expression.get("values"):
            causes.append(
                (
                    f"{where}.values",
                    "Required value: must be specified when `operator` is 'In' or 'NotIn'",
                )
            )
        elif operator in ("exists", "!") and expression.get("values"):
            causes.append(
                (
                    f"{where}.values",
                    "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                )
            )
    return causes


def selector_from_object(selector: Mapping[str, Any]) -> LabelSelector:
    """A metav1.LabelSelector object (matchLabels and matchExpressions, already valid) as
    requirements sorted by key, as kube-apiserver orders them."""
    requirements = [
        Requirement(key, "=", (value,))
        for key, value in (selector.get("matchLabels") or {}).items()
    ]
    requirements += [
        Requirement(
            expression["key"],
            _OBJECT_OPERATORS.get(expression.get("operator"), ""),  # "" matches nothing
            tuple(sorted(expression.get("values") or ())),
        )
        for expression in selector.get("matchExpressions") or []
    ]
    return LabelSelector(tuple(sorted(requirements, key=lambda r: r.key)))


# Field selectors -------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldTerm:
    field: str
    path: str
    negated: bool
    value: str


@dataclass(frozen=True)
class FieldSelector:
    terms: tuple[FieldTerm, ...]

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all((field_value(obj, t.path) == t.value) != t.negated for t in self.terms)

    @property
    def empty(self) -> bool:
        return not self.terms


def field_value(obj: Mapping[str, Any], path: str) -> str:
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


def _split_unescaped(text: str, separator: str) -> list[str]:
    parts, current, i = [], [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if text[i] == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(text[i])
        i += 1
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_field_selector(text: str | None, supported: Mapping[str, str]) -> FieldSelector:
    """Parse `a=b,c!=d`; `supported` maps selectable fields (beyond metadata.name and
    metadata.namespace) to their object paths. An unknown field is a 400, as in the real API."""
    if not text:
        return FieldSelector(())
    fields = {"metadata.name": "metadata.name", "metadata.namespace": "metadata.namespace"}
    fields.update(supported)
    terms: list[FieldTerm] = []
    for raw in _split_unescaped(text, ","):
        term = raw.strip()
        if not term:
            continue
        match = re.match(r"^((?:\\.|[^=!\\])*)(==|!=|=)(.*)$", term)
        if not match:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        name, operator, value = _unescape(match.group(1)), match.group(2), match.group(3)
        if name not in fields:
            # Kinds with their own selectable fields have a conversion function that says
            # "not supported"; the others answer with the generic metadata-only message.
            if supported:
                raise bad_request(f"field label not supported: {name}")
            raise bad_request(
                f'"{name}" is not a known field selector: only "metadata.name", '
                '"metadata.namespace"'
            )
        terms.append(FieldTerm(name, fields[name], operator == "!=", _unescape(value)))
    return FieldSelector(tuple(terms))


def exact_name(text: str | None) -> str | None:
    """The name a field selector requires exactly (metadata.name=<n>), whatever its other
    terms, or None; malformed selectors are reported when they are parsed for use."""
    names = []
    for raw in _split_unescaped(text or "", ","):
        match = re.match(r"^\s*metadata\.name\s*(==|=)(.*)$", raw)
        if match:
            names.append(_unescape(match.group(2)))
    return names[0] if len(names) == 1 else None
