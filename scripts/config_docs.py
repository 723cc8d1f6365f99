"""Write the configuration reference of docs/configuration.md from the config models.

Every field of the framework sections (micro.config.model.ServiceConfig) and of each
service's own sections becomes one row: key path, type, default, reload policy (declared
in the model, see micro.config.reload) and the field's docstring. The table sits between
two marker comments; the rest of the file is left as it is.

`python scripts/config_docs.py --check` writes nothing and exits 1 when the table differs
from the models. Either way a field with no declared reload policy is an error.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, SecretStr

from micro.config.model import ServiceConfig, service_config_model
from micro.config.reload import FieldRef, undeclared_fields, walk_fields

REPO_ROOT = Path(__file__).resolve().parents[1]
DOC = REPO_ROOT / "docs" / "configuration.md"
COMMAND = "uv run --locked --all-packages python scripts/config_docs.py"
BEGIN = f"<!-- BEGIN generated config reference: edit the models, then run `{COMMAND}` -->"
END = "<!-- END generated config reference -->"


@dataclass(frozen=True)
class Table:
    title: str
    model: type[ServiceConfig]
    own_only: bool  # a service's table leaves out the framework sections


# Every *-srv folder, so that a new service gets its table without an edit here.
TABLES = (
    Table("Every service: the framework sections", ServiceConfig, own_only=False),
    *(
        Table(folder.name, service_config_model(folder.name), own_only=True)
        for folder in sorted(REPO_ROOT.glob("*-srv"))
        if (folder / "pyproject.toml").is_file()
    ),
)


# one row ------------------------------------------------------------------------------


def type_text(annotation: Any) -> str:
    """How a field's type reads in the table."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        present = [a for a in args if a is not type(None)]
        return " or ".join(type_text(a) for a in present) + ", optional"
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin is tuple:
        return f"list of {type_text(args[0])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "{" + ", ".join(annotation.model_fields) + "}"
    names = {
        str: "string",
        int: "integer",
        float: "number",
        bool: "boolean",
        timedelta: "duration",
        SecretStr: "string, secret",
    }
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def constraints_text(metadata: Sequence[Any]) -> str:
    bounds = {
        annotated_types.Gt: ("gt", "> {}"),
        annotated_types.Ge: ("ge", ">= {}"),
        annotated_types.Lt: ("lt", "< {}"),
        annotated_types.Le: ("le", "<= {}"),
        annotated_types.MinLen: ("min_length", "length >= {}"),
        annotated_types.MaxLen: ("max_length", "length <= {}"),
    }
    parts = []
    for item in metadata:
        for kind, (attribute, text) in bounds.items():
            if isinstance(item, kind):
                parts.append(text.format(getattr(item, attribute)))
    return f" ({', '.join(parts)})" if parts else ""


def duration_text(value: timedelta) -> str:
    """Go style, as the config files write it: 1m30s, 500ms, 168h."""
    milliseconds = round(value.total_seconds() * 1000)
    if milliseconds == 0:
        return "0s"
    parts = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, milliseconds = divmod(milliseconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def default_text(value: Any) -> str:
    if value is None:
        return "absent"
    if isinstance(value, timedelta):
        return f"`{duration_text(value)}`"
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, tuple):
        items = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
        return f"`{json.dumps(items)}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f"`{json.dumps(value)}`"
    return f"`{value}`"


def cell(text: str) -> str:
    """One table cell: on one line, with no `|` or `<` that markdown would read as syntax."""
    return " ".join(text.split()).replace("|", "\\|").replace("<", "&lt;")


def value_at(config: BaseModel, field: FieldRef) -> Any:
    """The field's default as the service starts with it: a service's default for a
    section wins over the section class's own field defaults."""
    node: Any = config
    for name in field.path[:-1]:
        node = getattr(node, name) if node is not None else None
    if node is None:  # inside an absent optional section: the section class's default
        return field.info.get_default(call_default_factory=True)
    return getattr(node, field.path[-1])


def rows(table: Table) -> Iterator[str]:
    config = table.model()
    framework = ServiceConfig.model_fields
    for field in walk_fields(table.model):
        if table.own_only and field.path[0] in framework:
            continue
        if isinstance(field.info.annotation, type) and field.section is not None:
            continue  # an always-present section: its fields have the rows
        kind = type_text(field.info.annotation) + constraints_text(field.info.metadata)
        default = default_text(value_at(config, field))
        description = field.info.description or ""
        yield (
            f"| `{field.dotted}` | {cell(kind)} | {cell(default)} | {field.policy.value}"
            f" | {cell(description)} |"
        )


def reference() -> str:
    lines = [BEGIN]
    for table in TABLES:
        lines += [
            "",
            f"### {table.title}",
            "",
            "| Key | Type | Default | Reload | Description |",
            "|---|---|---|---|---|",
            *rows(table),
        ]
    lines += ["", END]
    return "\n".join(lines)


# the document -------------------------------------------------------------------------


def undeclared() -> list[str]:
    problems = []
    for table in TABLES:
        problems += [f"{table.title}: {path}" for path in undeclared_fields(table.model)]
    return sorted(set(problems))


def rendered(document: str) -> str:
    start, end = document.find(BEGIN), document.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"the markers of the generated reference are missing: {BEGIN} ... {END}")
    return document[:start] + reference() + document[end + len(END) :]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the table is stale")
    parser.add_argument("--doc", type=Path, default=DOC, help="the document to write or check")
    args = parser.parse_args(argv)
    missing = undeclared()
    if missing:
        print(
            "fields without a reload policy (declare one in the model: Annotated[T, "
            "Reload.LIVE or Reload.RESTART], or the section's reload_policy):",
            *missing,
            sep="\n  ",
            file=sys.stderr,
        )
        return 1
    document = args.doc.read_text(encoding="utf-8")
    expected = rendered(document)
    if document == expected:
        return 0
    if args.check:
        print(f"{args.doc} is stale: run `{COMMAND}`", file=sys.stderr)
        return 1
    args.doc.write_text(expected, encoding="utf-8")
    print(f"wrote the config reference in {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
