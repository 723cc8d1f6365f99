"""ValidatingAdmissionPolicy in the write path, evaluated as kube-apiserver's plugin.

A write (create, update, patch, delete) is checked after the kind's own validation and
before it is stored: every policy whose matchConstraints select the request, through each
binding that names it and whose matchResources select it too. A validation that is false
denies the request with the binding's Deny action or warns with Warn (Audit is accepted
and ignored: the audit log has no annotations). An evaluation error counts as a denial
under failurePolicy Fail and lets the request through under Ignore.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from devcluster.apiserver.admission_cel import CelError, Program, compile_expression, evaluate
from devcluster.apiserver.admission_match import Subject, resources_match
from devcluster.apiserver.auth import UserInfo
from devcluster.apiserver.resources import ResourceType
from devcluster.apiserver.status import ApiError
from devcluster.apiserver.store import Obj, Store

GROUP = "admissionregistration.k8s.io"
POLICIES = (GROUP, "validatingadmissionpolicies")
BINDINGS = (GROUP, "validatingadmissionpolicybindings")
# As kube-apiserver's reasonToCode: the reasons a validation may name.
REASON_CODES = {"Forbidden": 403, "Unauthorized": 401, "RequestEntityTooLarge": 413}

# Called with (object, oldObject) just before a write is stored; raises ApiError to deny.
Admit = Callable[[Obj | None, Obj | None], None]


@dataclass(frozen=True)
class WriteRequest:
    """Who writes what, known before the objects are."""

    operation: str  # CREATE, UPDATE, DELETE
    resource: ResourceType
    subresource: str
    user: UserInfo
    dry_run: bool


@dataclass
class Denial:
    policy: str
    binding: str
    message: str
    reason: str


@dataclass
class _Outcome:
    denials: list[Denial] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _labels(obj: Obj | None) -> Mapping[str, str]:
    labels = ((obj or {}).get("metadata") or {}).get("labels")
    return labels if isinstance(labels, dict) else {}


def _omit_empty(values: dict[str, Any]) -> dict[str, Any]:
    """As the AdmissionRequest's JSON (omitempty): CEL sees no key for an empty field."""
    return {k: v for k, v in values.items() if v not in ("", None, [], {})}


class Admission:
    def __init__(self, store: Store) -> None:
        self.store = store

    def checker(self, request: WriteRequest, warnings: list[str]) -> Admit:
        """The admit function for one request; Warn actions append to `warnings`."""

        def admit(obj: Obj | None, old: Obj | None) -> None:
            outcome = self._evaluate(request, obj, old)
            warnings.extend(outcome.warnings)
            if outcome.denials:
                raise self._denied(request, obj if obj is not None else old, outcome.denials[0])

        return admit

    # matching --------------------------------------------------------------------------

    def _namespace(self, request: WriteRequest, obj: Obj) -> Obj | None:
        if request.resource.plural == "namespaces":
            return None
        namespace = obj["metadata"].get("namespace", "")
        if not request.resource.namespaced or not namespace:
            return None
        entry = self.store.get(("", "namespaces"), ("", namespace))
        return entry.obj if entry is not None else None

    def _subject(self, request: WriteRequest, obj: Obj, old: Obj | None) -> Subject:
        resource = request.resource
        namespace = self._namespace(request, obj)
        labels: Mapping[str, str] | None = None
        if resource.plural == "namespaces":
            labels = _labels(obj)
        elif namespace is not None:
            labels = _labels(namespace)
        objects = tuple(_labels(o) for o in (obj, old) if o is not None)
        return Subject(
            operation=request.operation,
            group=resource.group,
            version=resource.version,
            resource=resource.plural,
            subresource=request.subresource,
            name=obj["metadata"].get("name", ""),
            namespaced=resource.namespaced,
            namespace_labels=labels,
            object_labels=objects,
        )

    # evaluation ------------------------------------------------------------------------

    def _evaluate(self, request: WriteRequest, obj: Obj | None, old: Obj | None) -> _Outcome:
        outcome = _Outcome()
        subject_obj = obj if obj is not None else old
        policies = self.store.entries(POLICIES)
        if subject_obj is None or not policies:
            return outcome
        subject = self._subject(request, subject_obj, old if obj is not None else None)
        bindings = [e.obj for e in self.store.entries(BINDINGS)]
        activation: dict[str, Any] | None = None
        for entry in sorted(policies, key=lambda e: str(e.obj["metadata"]["name"])):
            policy = entry.obj
            spec = policy.get("spec") or {}
            if not resources_match(spec.get("matchConstraints") or {}, subject):
                continue
            name = policy["metadata"]["name"]
            for binding in sorted(bindings, key=lambda b: str(b["metadata"]["name"])):
                binding_spec = binding.get("spec") or {}
                if binding_spec.get("policyName") != name:
                    continue
                narrowing = binding_spec.get("matchResources")
                if isinstance(narrowing, dict) and not resources_match(narrowing, subject):
                    continue
                if activation is None:
                    activation = self._activation(request, subject_obj, obj, old)
                decisions = _decide(spec, activation)
                actions = binding_spec.get("validationActions") or []
                for message, reason in decisions:
                    if "Deny" in actions:
                        denial = Denial(name, binding["metadata"]["name"], message, reason)
                        outcome.denials.append(denial)
                    if "Warn" in actions:
                        outcome.warnings.append(
                            f"Validation failed for ValidatingAdmissionPolicy '{name}' with "
                            f"binding '{binding['metadata']['name']}': {message}"
                        )
        return outcome

    def _activation(
        self, request: WriteRequest, subject_obj: Obj, obj: Obj | None, old: Obj | None
    ) -> dict[str, Any]:
        resource = request.resource
        metadata = subject_obj["metadata"]
        user = request.user
        kind = {"group": resource.group, "version": resource.version, "kind": resource.kind}
        gvr = {"group": resource.group, "version": resource.version, "resource": resource.plural}
        request_object = _omit_empty(
            {
                "uid": str(uuid.uuid4()),
                "kind": kind,
                "resource": gvr,
                "subResource": request.subresource,
                "requestKind": kind,
                "requestResource": gvr,
                "requestSubResource": request.subresource,
                "name": metadata.get("name", ""),
                "namespace": metadata.get("namespace", "") if resource.namespaced else "",
                "operation": request.operation,
                "userInfo": _omit_empty(
                    {
                        "username": user.name,
                        "uid": user.uid,
                        "groups": list(user.groups),
                        "extra": {k: list(v) for k, v in user.extra.items()},
                    }
                ),
            }
        )
        request_object["dryRun"] = request.dry_run
        return {
            "object": obj,
            "oldObject": old,
            "request": request_object,
            "namespaceObject": self._namespace(request, subject_obj),
            "params": None,
            "variables": {},
        }

    @staticmethod
    def _denied(request: WriteRequest, obj: Obj | None, denial: Denial) -> ApiError:
        """kube-apiserver's admission.NewForbidden, with the validation's reason and code."""
        resource = request.resource
        name = ((obj or {}).get("metadata") or {}).get("name", "")
        qualified = f"{resource.plural}.{resource.group}" if resource.group else resource.plural
        message = (
            f"ValidatingAdmissionPolicy '{denial.policy}' with binding '{denial.binding}' "
            f"denied request: {denial.message}"
        )
        details: dict[str, Any] = {"name": name, "kind": resource.plural}
        if resource.group:
            details["group"] = resource.group
        details["causes"] = [{"message": message}]
        return ApiError(
            REASON_CODES.get(denial.reason, 422),
            f'{qualified} "{name}" is forbidden: {message}',
            reason=denial.reason,
            details=details,
        )


def _run(source: str, activation: Mapping[str, Any]) -> Any:
    program: Program = compile_expression(source)
    return evaluate(program, activation)


def _failed(source: str, error: CelError) -> str:
    return f"expression '{source}' resulted in error: {error}"


def _decide(spec: Mapping[str, Any], activation: dict[str, Any]) -> list[tuple[str, str]]:
    """(message, reason) of every validation that denies: false, or an evaluation error
    under failurePolicy Fail (reason Invalid, as kube-apiserver)."""
    fail = spec.get("failurePolicy", "Fail") != "Ignore"
    errors: list[str] = []
    matched = True
    for condition in spec.get("matchConditions") or []:
        source = condition.get("expression", "")
        try:
            result = _run(source, activation)
        except CelError as error:
            errors.append(_failed(source, error))
            continue
        if result is not True:
            matched = False
    if not matched:
        return []  # a false condition wins over another's error, as in kube-apiserver
    if errors:
        return [(errors[0], "Invalid")] if fail else []
    variables: dict[str, Any] = {}
    activation = {**activation, "variables": variables}
    for variable in spec.get("variables") or []:
        # Evaluated in order, each seeing the earlier ones; one that fails is left out,
        # so an expression that uses it fails in turn.
        try:
            variables[variable["name"]] = _run(variable.get("expression", ""), activation)
        except CelError:
            continue
    decisions: list[tuple[str, str]] = []
    for validation in spec.get("validations") or []:
        source = validation.get("expression", "")
        try:
            result = _run(source, activation)
        except CelError as error:
            if fail:
                decisions.append((_failed(source, error), "Invalid"))
            continue
        if result is True:
            continue
        if result is not False:
            if fail:
                message = f"expression '{source}' resulted in a {type(result).__name__}, not a bool"
                decisions.append((message, "Invalid"))
            continue
        decisions.append((_message(validation, activation), validation.get("reason") or "Invalid"))
    return decisions


def _message(validation: Mapping[str, Any], activation: Mapping[str, Any]) -> str:
    """messageExpression if it yields a one-line string, else message, else the
    expression (kube-apiserver's fallbacks)."""
    source = validation.get("messageExpression")
    if source:
        try:
            text = _run(source, activation)
        except CelError:
            text = None
        if isinstance(text, str) and text.strip() and "\n" not in text.strip():
            return text.strip()
    message = str(validation.get("message") or "").strip()
    return message or f"failed expression: {str(validation.get('expression', '')).strip()}"
