"""Defaults and validation of ValidatingAdmissionPolicy(+Binding) specs, as kube-apiserver's
admissionregistration strategy: every CEL expression is compiled at create and update, and
a policy whose expression does not compile is refused (422) naming the field."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from devcluster.apiserver.admission_cel import CelError, compile_expression
from devcluster.apiserver.selectors import selector_object_causes
from devcluster.apiserver.validation import Causes

OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT", "*")
FAILURE_POLICIES = ("Fail", "Ignore")
MATCH_POLICIES = ("Exact", "Equivalent")
REASONS = ("Unauthorized", "Forbidden", "Invalid", "RequestEntityTooLarge")
ACTIONS = ("Deny", "Warn", "Audit")
_IDENTIFIER = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f'"{v}"' for v in values)


def default_match_resources(match: dict[str, Any]) -> None:
    # A rule's scope is not written back (an absent scope is "*" when matching): kubectl
    # apply, without the kind's schema, would see the rules list differ and replace it.
    match.setdefault("namespaceSelector", {})
    match.setdefault("objectSelector", {})
    match.setdefault("matchPolicy", "Equivalent")


def default_policy(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    if isinstance(spec, dict):
        spec.setdefault("failurePolicy", "Fail")
        if isinstance(spec.get("matchConstraints"), dict):
            default_match_resources(spec["matchConstraints"])


def default_binding(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    if isinstance(spec, dict) and isinstance(spec.get("matchResources"), dict):
        default_match_resources(spec["matchResources"])


def _expression_causes(field: str, source: Any, returns: tuple[str, ...]) -> Causes:
    if not isinstance(source, str) or not source.strip():
        return [(field, "Required value")]
    try:
        program = compile_expression(source)
    except CelError as error:
        return [(field, f'Invalid value: "{source}": {error}')]
    if returns and program.returns not in (*returns, "DYN"):
        wanted = " or ".join(r.lower() for r in returns)
        return [
            (
                field,
                f'Invalid value: "{source}": must evaluate to {wanted} '
                f"but got {program.returns.lower()}",
            )
        ]
    return []


def _rule_causes(rule: Any, field: str) -> Causes:
    if not isinstance(rule, dict):
        return [(field, "Invalid value: must be an object")]
    causes: Causes = []
    for key in ("apiGroups", "apiVersions", "operations", "resources"):
        values = rule.get(key)
        if not isinstance(values, list) or not values:
            causes.append((f"{field}.{key}", "Required value"))
        elif "*" in values and len(values) > 1:
            causes.append(
                (f"{field}.{key}", "Invalid value: if '*' is present, must not specify other")
            )
    for index, operation in enumerate(rule.get("operations") or []):
        if operation not in OPERATIONS:
            causes.append(
                (
                    f"{field}.operations[{index}]",
                    f'Unsupported value: "{operation}": supported values: {_quoted(OPERATIONS)}',
                )
            )
    return causes


def _match_causes(match: Any, field: str, *, rules_required: bool) -> Causes:
    if not isinstance(match, dict):
        return [(field, "Required value")]
    causes: Causes = []
    rules = match.get("resourceRules")
    if rules_required and not rules:
        causes.append((f"{field}.resourceRules", "Required value"))
    for key in ("resourceRules", "excludeResourceRules"):
        for index, rule in enumerate(match.get(key) or []):
            causes += _rule_causes(rule, f"{field}.{key}[{index}]")
    for key in ("namespaceSelector", "objectSelector"):
        selector = match.get(key)
        if isinstance(selector, dict):
            causes += selector_object_causes(selector, f"{field}.{key}")
    if match.get("matchPolicy", "Equivalent") not in MATCH_POLICIES:
        causes.append(
            (
                f"{field}.matchPolicy",
                f'Unsupported value: "{match.get("matchPolicy")}": supported values: '
                f"{_quoted(MATCH_POLICIES)}",
            )
        )
    return causes


def _named_expressions(items: Any, field: str, returns: tuple[str, ...]) -> Causes:
    """matchConditions and variables: a name each (unique), an expression each."""
    if items is None:
        return []
    if not isinstance(items, list):
        return [(field, "Invalid value: must be a list")]
    causes: Causes = []
    seen: set[str] = set()
    variables = field.endswith("variables")
    for index, item in enumerate(items):
        where = f"{field}[{index}]"
        if not isinstance(item, dict):
            causes.append((where, "Invalid value: must be an object"))
            continue
        name = item.get("name")
        pattern = _IDENTIFIER if variables else _QUALIFIED_NAME
        if not isinstance(name, str) or not name:
            causes.append((f"{where}.name", "Required value"))
        elif not pattern.match(name):
            rule = "a valid CEL identifier" if variables else "a qualified name"
            causes.append((f"{where}.name", f'Invalid value: "{name}": name is not {rule}'))
        elif name in seen:
            causes.append((f"{where}.name", f'Duplicate value: "{name}"'))
        else:
            seen.add(name)
        causes += _expression_causes(f"{where}.expression", item.get("expression"), returns)
    return causes


def _validation_causes(items: Any, field: str) -> Causes:
    if not isinstance(items, list):
        return [(field, "Invalid value: must be a list")]
    causes: Causes = []
    for index, item in enumerate(items):
        where = f"{field}[{index}]"
        if not isinstance(item, dict):
            causes.append((where, "Invalid value: must be an object"))
            continue
        causes += _expression_causes(f"{where}.expression", item.get("expression"), ("BOOL",))
        if item.get("messageExpression") is not None:
            causes += _expression_causes(
                f"{where}.messageExpression", item["messageExpression"], ("STRING",)
            )
        message = item.get("message")
        if isinstance(message, str) and "\n" in message:
            causes.append(
                (f"{where}.message", "Invalid value: message must not contain line breaks")
            )
        reason = item.get("reason")
        if reason is not None and reason not in REASONS:
            causes.append(
                (
                    f"{where}.reason",
                    f'Unsupported value: "{reason}": supported values: {_quoted(REASONS)}',
                )
            )
    return causes


def policy_causes(obj: Mapping[str, Any]) -> Causes:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    causes: Causes = []
    if spec.get("paramKind") is not None:
        causes.append(("spec.paramKind", "Forbidden: parameters are not supported here"))
    if spec.get("failurePolicy") not in FAILURE_POLICIES:
        causes.append(
            (
                "spec.failurePolicy",
                f'Unsupported value: "{spec.get("failurePolicy")}": supported values: '
                f"{_quoted(FAILURE_POLICIES)}",
            )
        )
    causes += _match_causes(
        spec.get("matchConstraints"), "spec.matchConstraints", rules_required=True
    )
    validations = spec.get("validations")
    if not validations and not spec.get("auditAnnotations"):
        causes.append(
            (
                "spec.validations",
                "Required value: validations or auditAnnotations must contain at least one item",
            )
        )
    elif validations:
        causes += _validation_causes(validations, "spec.validations")
    causes += _named_expressions(spec.get("matchConditions"), "spec.matchConditions", ("BOOL",))
    causes += _named_expressions(spec.get("variables"), "spec.variables", ())
    for index, annotation in enumerate(spec.get("auditAnnotations") or []):
        source = annotation.get("valueExpression") if isinstance(annotation, dict) else None
        causes += _expression_causes(
            f"spec.auditAnnotations[{index}].valueExpression", source, ("STRING",)
        )
    return causes


def binding_causes(obj: Mapping[str, Any]) -> Causes:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    causes: Causes = []
    if not spec.get("policyName"):
        causes.append(("spec.policyName", "Required value"))
    if spec.get("paramRef") is not None:
        causes.append(("spec.paramRef", "Forbidden: parameters are not supported here"))
    actions = spec.get("validationActions")
    if not isinstance(actions, list) or not actions:
        causes.append(("spec.validationActions", "Required value"))
    else:
        for index, action in enumerate(actions):
            if action not in ACTIONS:
                causes.append(
                    (
                        f"spec.validationActions[{index}]",
                        f'Unsupported value: "{action}": supported values: {_quoted(ACTIONS)}',
                    )
                )
            elif action in actions[:index]:
                causes.append((f"spec.validationActions[{index}]", f'Duplicate value: "{action}"'))
        if "Deny" in actions and "Warn" in actions:
            causes.append(
                (
                    "spec.validationActions",
                    'Invalid value: ["Deny","Warn"]: must not contain both Deny and Warn '
                    "(repeating the same validation failure information in the API response "
                    "and headers serves no purpose)",
                )
            )
    if spec.get("matchResources") is not None:
        causes += _match_causes(spec["matchResources"], "spec.matchResources", rules_required=False)
    return causes
