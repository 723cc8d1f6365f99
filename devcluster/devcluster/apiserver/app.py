"""HTTP routes: authenticate, authorize, then dispatch to the registry."""

from __future__ import annotations

import contextlib
import json
import logging
import pathlib
from dataclasses import dataclass
from typing import Any

import yaml
from aiohttp import web

from devcluster.apiserver import discovery, oidc, openapi, status
from devcluster.apiserver.admission import Admission, Admit, WriteRequest
from devcluster.apiserver.audit import RECORD_KEY, AuditLog, install
from devcluster.apiserver.auth import (
    AUTHENTICATED,
    ISSUER,
    Attributes,
    Authenticator,
    Authorizer,
    TokenAuthority,
    UserInfo,
    forbidden,
)
from devcluster.apiserver.logs import serve_log
from devcluster.apiserver.patch import apply_patch
from devcluster.apiserver.protowire import UnsupportedKind, decode_object, decode_review
from devcluster.apiserver.registry import Registry, now_rfc3339
from devcluster.apiserver.resources import VIRTUAL, ResourceType, lookup
from devcluster.apiserver.selectors import (
    FieldSelector,
    LabelSelector,
    exact_name,
    parse_field_selector,
    parse_label_selector,
)
from devcluster.apiserver.store import Obj, Store, Watcher
from devcluster.apiserver.subresources import (
    bind_pod,
    request_token,
    rescale,
    scale_of,
    self_subject_access_review,
    self_subject_review,
)
from devcluster.apiserver.tables import table, wants_table
from devcluster.apiserver.watch import WatchOptions, json_line, serve_watch

log = logging.getLogger(__name__)

STORE_KEY = web.AppKey("store", Store)
WARNINGS_KEY = "devcluster.warnings"  # the request's Warning headers (admission's Warn)
JSON = "application/json"
FRESHNESS_WAIT_S = 3.0  # how long a read waits for a resourceVersion it has not reached


@dataclass(frozen=True)
class Target:
    """A resource request, parsed from the URL."""

    resource: ResourceType | None
    plural: str
    group: str
    version: str
    namespace: str | None  # None: every namespace (or a cluster-scoped kind)
    name: str
    subresource: str


def json_response(body: Any, code: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(), status=code, content_type=JSON
    )


def raw_response(raw: bytes, code: int = 200) -> web.Response:
    return web.Response(body=raw, status=code, content_type=JSON)


def error_response(error: status.ApiError) -> web.Response:
    return json_response(error.status(), error.code)


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("true", "1")


def _resource_version(raw: str) -> int:
    try:
        version = int(raw)
    except ValueError:
        version = -1
    if version < 0:
        raise status.bad_request(f'resourceVersion: Invalid value: "{raw}": must be an integer')
    return version


def _int_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError as error:
        raise status.bad_request(f'{name}: Invalid value: "{raw}": must be an integer') from error


class ApiServer:
    def __init__(
        self,
        store: Store,
        tokens: TokenAuthority,
        state_dir: pathlib.Path,
        server_address: str,
        audit: AuditLog | None = None,
    ) -> None:
        self.store = store
        self.audit = audit
        self.tokens = tokens
        self.state_dir = state_dir
        self.server_address = server_address
        self.registry = Registry(store)
        self.authenticator = Authenticator(tokens, store)
        self.authorizer = Authorizer(store)
        self.admission = Admission(store)

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._errors], client_max_size=16 * 1024 * 1024)
        app[STORE_KEY] = self.store
        app.router.add_route("*", "/{tail:.*}", self.handle)
        if self.audit is not None:
            install(app, self.audit)
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
        except status.ApiError as error:
            response = error_response(error)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("internal error on %s %s", request.method, request.path)
            return error_response(status.ApiError(500, "Internal error occurred"))
        if not response.prepared:
            for warning in request.get(WARNINGS_KEY, []):
                escaped = warning.replace("\\", "\\\\").replace('"', '\\"')
                response.headers.add("Warning", f'299 - "{escaped}"')
        return response

    # entry -----------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        record = request.get(RECORD_KEY)  # None: no audit log
        path = request.path.rstrip("/") or "/"
        parts = [p for p in path.split("/") if p]
        target = self._target(parts)
        attributes: Attributes | None = None
        if target is not None:
            verb = self._verb(request, target)
            attributes = Attributes(
                verb=verb,
                group=target.group,
                resource=target.plural,
                subresource=target.subresource,
                namespace=target.namespace or "",
                name=target.name or self._selected_name(request, verb),
            )
            if record is not None:  # known before authentication, as RequestInfo
                record.resource_request(attributes, target.version)
        authenticated = self.authenticator.authenticate(request.headers.get("Authorization"))
        if record is not None:
            record.user = authenticated
        user = self._impersonate(request, authenticated)
        if record is not None and user is not authenticated:
            record.impersonated = user
        if target is None or attributes is None:
            return await self._non_resource(request, user, path)
        allowed = self.authorizer.allowed(user, attributes)
        if record is not None:
            record.decision = "allow" if allowed else "forbid"
        if not allowed:
            raise forbidden(user, attributes)
        if target.resource is None:
            raise status.ApiError(404, "the server could not find the requested resource")
        return await self._resource(request, user, target, attributes.verb)

    def _impersonate(self, request: web.Request, user: UserInfo) -> UserInfo:
        """Impersonate-User / Impersonate-Group, allowed by the `impersonate` verb."""
        name = request.headers.get("Impersonate-User")
        groups = tuple(request.headers.getall("Impersonate-Group", []))
        if not name:
            if groups:
                raise status.bad_request("requested impersonation of groups without a user")
            return user
        checks = [Attributes(verb="impersonate", resource="groups", name=g) for g in groups]
        prefix = "system:serviceaccount:"
        if name.startswith(prefix) and name.count(":") == 3:
            account_namespace, account = name[len(prefix) :].split(":")
            checks.append(
                Attributes(
                    verb="impersonate",
                    resource="serviceaccounts",
                    namespace=account_namespace,
                    name=account,
                )
            )
            # A ServiceAccount comes with its groups, as when it authenticates itself.
            groups = (
                *groups,
                "system:serviceaccounts",
                f"system:serviceaccounts:{account_namespace}",
            )
        else:
            checks.append(Attributes(verb="impersonate", resource="users", name=name))
        for attributes in checks:
            if not self.authorizer.allowed(user, attributes):
                raise forbidden(user, attributes)
        if AUTHENTICATED not in groups:
            groups = (*groups, AUTHENTICATED)
        return UserInfo(name, groups)

    def _target(self, parts: list[str]) -> Target | None:
        if parts[:2] == ["api", "v1"] and len(parts) > 2:
            group, version, rest = "", "v1", parts[2:]
        elif parts[:1] == ["apis"] and len(parts) > 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            candidate = lookup(group, version, rest[2])
            if candidate is not None and candidate.namespaced:
                namespace, rest = rest[1], rest[2:]
        plural = rest[0]
        resource = lookup(group, version, plural)
        name = rest[1] if len(rest) > 1 else ""
        subresource = rest[2] if len(rest) > 2 else ""
        if len(rest) > 3 or (subresource and resource and subresource not in resource.subresources):
            resource = None
        if resource is not None and resource.namespaced is False and namespace is not None:
            resource = None
        if resource is not None and not resource.namespaced and name and plural == "namespaces":
            namespace = name  # RBAC sees a namespace's own name as its namespace
        return Target(resource, plural, group, version, namespace, name, subresource)

    @staticmethod
    def _selected_name(request: web.Request, verb: str) -> str:
        """As kube-apiserver's RequestInfo: a list or watch that selects one name with
        fieldSelector=metadata.name=<n> is a request for that name, so RBAC
        resourceNames admit it."""
        if verb not in ("list", "watch"):
            return ""
        name = exact_name(request.query.get("fieldSelector"))
        if name is None or name in (".", "..") or "/" in name or "%" in name:
            return ""
        return name

    @staticmethod
    def _verb(request: web.Request, target: Target) -> str:
        method = request.method
        if method == "GET":
            if _flag(request, "watch"):
                return "watch"
            return "get" if target.name else "list"
        if method == "POST":
            return "create"
        if method == "PUT":
            return "update"
        if method == "PATCH":
            return "patch"
        if method == "DELETE":
            return "delete" if target.name else "deletecollection"
        return method.lower()

    # non-resource endpoints ------------------------------------------------------------

    async def _non_resource(
        self, request: web.Request, user: UserInfo, path: str
    ) -> web.StreamResponse:
        verb = {"GET": "get", "HEAD": "head", "POST": "post"}.get(request.method, "")
        allowed = self.authorizer.allowed(user, Attributes(verb=verb or "get", path=path))
        record = request.get(RECORD_KEY)
        if record is not None:
            record.decision = "allow" if allowed else "forbid"
        if not allowed:
            raise forbidden(user, Attributes(verb=verb or "get", path=path))
        if path in ("/healthz", "/livez", "/readyz") or path.startswith(
            ("/healthz/", "/livez/", "/readyz/")
        ):
            return web.Response(text="ok", content_type="text/plain")
        if path == "/openapi/v2":
            document, content_type = openapi.document_bytes(request.headers.get("Accept", ""))
            return web.Response(body=document, content_type=content_type)
        if path == oidc.DISCOVERY_PATH and verb == "get":
            return json_response(oidc.discovery_document(ISSUER, self.server_address))
        if path == oidc.JWKS_PATH and verb == "get":
            keys = json.dumps(self.tokens.keys.jwks(), separators=(",", ":")).encode()
            return web.Response(body=keys, content_type=oidc.JWKS_CONTENT_TYPE)
        if path == oidc.ROTATE_PATH and verb == "post":
            kid = self.tokens.keys.rotate()
            log.info("service-account signing key rotated: kid %s", kid)
            return json_response({"kid": kid, "jwks": self.tokens.keys.jwks()})
        body: Any = None
        if path == "/version":
            body = discovery.version_info()
        elif path == "/api":
            body = discovery.api_versions(self.server_address)
        elif path == "/api/v1":
            body = discovery.api_resource_list("", "v1")
        elif path == "/apis":
            body = discovery.api_group_list()
        elif path.startswith("/apis/"):
            pieces = path.split("/")[2:]
            if len(pieces) == 1:
                body = discovery.api_group(pieces[0])
            elif len(pieces) == 2:
                body = discovery.api_resource_list(pieces[0], pieces[1])
        if body is None:
            raise status.ApiError(404, "the server could not find the requested resource")
        return json_response(body)

    # resources -------------------------------------------------------------------------

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            return {}
        if "protobuf" in request.content_type:
            with contextlib.suppress(UnsupportedKind):
                return decode_object(raw)
        if "protobuf" in request.content_type or "cbor" in request.content_type:
            # Only JSON (and YAML) bodies are served; client-go falls back to JSON on a 415.
            raise status.ApiError(
                415,
                "the body of the request was in an unknown format - accepted media types "
                "include: application/json, application/yaml, "
                "application/json-patch+json, application/merge-patch+json, "
                "application/strategic-merge-patch+json",
                reason="UnsupportedMediaType",
            )
        try:
            if "yaml" in request.content_type:
                return yaml.safe_load(raw)
            return json.loads(raw)
        except RecursionError:
            # Deeper than the parsers can follow: a 400, like any body it cannot read.
            raise status.bad_request("the request body is nested too deeply") from None
        except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as error:
            raise status.bad_request(f"the request body is not valid JSON: {error}") from error

    def _selectors(
        self, request: web.Request, resource: ResourceType
    ) -> tuple[LabelSelector, FieldSelector]:
        labels = parse_label_selector(request.query.get("labelSelector"))
        fields = parse_field_selector(request.query.get("fieldSelector"), resource.field_paths)
        return labels, fields

    def _admit(self, request: web.Request, user: UserInfo, target: Target, verb: str) -> Admit:
        """The validating admission of this write (its Warn messages become headers)."""
        assert target.resource is not None
        operation = {"create": "CREATE", "delete": "DELETE", "deletecollection": "DELETE"}
        warnings: list[str] = request.setdefault(WARNINGS_KEY, [])
        write = WriteRequest(
            operation=operation.get(verb, "UPDATE"),
            resource=target.resource,
            subresource=target.subresource,
            user=user,
            dry_run=request.query.get("dryRun") == "All",
        )
        return self.admission.checker(write, warnings)

    async def _resource(
        self, request: web.Request, user: UserInfo, target: Target, verb: str
    ) -> web.StreamResponse:
        resource = target.resource
        assert resource is not None
        if verb not in resource.verbs and not target.subresource:
            raise status.ApiError(
                405,
                "the server does not allow this method on the requested resource",
                reason="MethodNotAllowed",
            )
        namespace = target.namespace or ""
        dry_run = request.query.get("dryRun") == "All"
        if resource.plural in VIRTUAL:
            return await self._virtual(request, user, resource)
        if target.subresource:
            return await self._subresource(request, user, target, verb, dry_run)
        if verb in ("list", "watch"):
            return await self._list_or_watch(request, target, verb)
        if verb == "get":
            self.registry.require_namespace(resource, namespace, creating=False)
            entry = self.registry.get(resource, namespace, target.name)
            if wants_table(request.headers.get("Accept", "")):
                return json_response(
                    self._table(
                        request, resource, [entry.obj], entry.obj["metadata"]["resourceVersion"]
                    )
                )
            return raw_response(entry.raw)
        if verb == "create":
            body = await self._body(request)
            record = request.get(RECORD_KEY)
            if record is not None:
                record.created(body)
            admit = self._admit(request, user, target, verb)
            return json_response(
                self.registry.create(resource, namespace, body, dry_run=dry_run, admit=admit), 201
            )
        if verb == "update":
            body = await self._body(request)
            admit = self._admit(request, user, target, verb)
            return json_response(
                self.registry.update(
                    resource, namespace, target.name, body, dry_run=dry_run, admit=admit
                )
            )
        if verb == "patch":
            body = await self._body(request)
            return json_response(
                self.registry.patch(
                    resource,
                    namespace,
                    target.name,
                    request.content_type,
                    body,
                    dry_run=dry_run,
                    admit=self._admit(request, user, target, verb),
                )
            )
        if verb == "delete":
            admit = self._admit(request, user, target, verb)
            return await self._delete(request, resource, namespace, target.name, dry_run, admit)
        if verb == "deletecollection":
            labels, fields = self._selectors(request, resource)
            options = await self._delete_options(request)
            deleted = self.registry.delete_collection(
                resource,
                target.namespace,
                labels,
                fields,
                options,
                admit=self._admit(request, user, target, verb),
            )
            return json_response(
                {
                    "kind": f"{resource.kind}List",
                    "apiVersion": resource.api_version,
                    "metadata": {"resourceVersion": str(self.store.rv)},
                    "items": deleted,
                }
            )
        raise status.ApiError(
            405,
            "the server does not allow this method on the requested resource",
            reason="MethodNotAllowed",
        )

    def _table(
        self,
        request: web.Request,
        resource: ResourceType,
        objects: list[Obj],
        rv: str,
        continue_token: str = "",
    ) -> dict[str, Any]:
        include = request.query.get("includeObject", "PartialObjectMetadata")
        return table(resource, objects, rv, include, continue_token)

    async def _list_or_watch(
        self, request: web.Request, target: Target, verb: str
    ) -> web.StreamResponse:
        resource = target.resource
        assert resource is not None
        namespace = target.namespace if resource.namespaced else None
        if namespace:
            self.registry.require_namespace(resource, namespace, creating=False)
        labels, fields = self._selectors(request, resource)
        if target.name:  # GET .../pods/x?watch=true watches one object
            fields = FieldSelector(
                (*fields.terms, *parse_field_selector(f"metadata.name={target.name}", {}).terms)
            )
        if verb == "watch":
            return await self._watch(request, resource, namespace, labels, fields)
        requested = request.query.get("resourceVersion", "")
        if requested not in ("", "0") and not request.query.get("continue"):
            await self._wait_until_fresh(_resource_version(requested))
        limit = _int_param(request, "limit") or 0
        page = self.registry.list_page(
            resource, namespace, labels, fields, limit, request.query.get("continue", "")
        )
        if wants_table(request.headers.get("Accept", "")):
            return json_response(
                self._table(
                    request,
                    resource,
                    [e.obj for e in page.entries],
                    str(page.resource_version),
                    page.continue_token,
                )
            )
        metadata: dict[str, Any] = {"resourceVersion": str(page.resource_version)}
        if page.continue_token:
            metadata["continue"] = page.continue_token
            metadata["remainingItemCount"] = page.remaining
        head = json.dumps(
            {
                "kind": f"{resource.kind}List",
                "apiVersion": resource.api_version,
                "metadata": metadata,
            },
            separators=(",", ":"),
        ).encode()
        body = head[:-1] + b',"items":[' + b",".join(e.raw for e in page.entries) + b"]}"
        return raw_response(body)

    async def _watch(
        self,
        request: web.Request,
        resource: ResourceType,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
    ) -> web.StreamResponse:
        rv_param = request.query.get("resourceVersion", "")
        since: int | None = None
        send_initial = _flag(request, "sendInitialEvents")
        if rv_param not in ("", "0") and not send_initial:
            since = _resource_version(rv_param)
            await self._wait_until_fresh(since)
        timeout = _int_param(request, "timeoutSeconds")

        def accepts(obj: Obj) -> bool:
            return labels.matches(obj["metadata"].get("labels")) and fields.matches(obj)

        options = WatchOptions(
            since=since,
            timeout_s=float(timeout) if timeout is not None else None,
            bookmarks=_flag(request, "allowWatchBookmarks"),
            initial_events_end=send_initial and _flag(request, "allowWatchBookmarks"),
        )
        watcher = Watcher(namespace=namespace, accepts=accepts)
        render = json_line
        if wants_table(request.headers.get("Accept", "")):

            def render(event_type: str, obj: Obj, raw: bytes | None) -> bytes:
                if event_type in ("ERROR", "BOOKMARK"):
                    return json_line(event_type, obj, raw)
                rows = self._table(request, resource, [obj], obj["metadata"]["resourceVersion"])
                return json_line(event_type, rows, None)

        return await serve_watch(request, self.store, resource, watcher, options, render)

    async def _wait_until_fresh(self, version: int) -> None:
        """A version from the future: wait a little for it, then 504 as kube-apiserver."""
        if not await self.store.wait_for_version(version, FRESHNESS_WAIT_S):
            raise status.ApiError(
                504,
                f"Too large resource version: {version}, current: {self.store.rv}",
                reason="Timeout",
                details={
                    "causes": [
                        {
                            "reason": "ResourceVersionTooLarge",
                            "message": "Too large resource version",
                        }
                    ],
                    "retryAfterSeconds": 1,
                },
            )

    async def _delete_options(self, request: web.Request) -> dict[str, Any]:
        options = await self._body(request)
        if not isinstance(options, dict):
            raise status.bad_request("DeleteOptions must be a JSON object")
        grace = _int_param(request, "gracePeriodSeconds")
        if grace is not None:
            options["gracePeriodSeconds"] = grace
        return options

    async def _delete(
        self,
        request: web.Request,
        resource: ResourceType,
        namespace: str,
        name: str,
        dry_run: bool,
        admit: Admit,
    ) -> web.StreamResponse:
        options = await self._delete_options(request)
        result = self.registry.delete(
            resource, namespace, name, options, dry_run=dry_run, admit=admit
        )
        if not result.removed or self.registry.returns_deleted_object(resource):
            return json_response(result.obj)
        details: dict[str, Any] = {
            "name": name,
            "kind": resource.plural,
            "uid": result.obj["metadata"].get("uid", ""),
        }
        if resource.group:
            details["group"] = resource.group
        return json_response(status.success_status(details))

    async def _subresource(
        self, request: web.Request, user: UserInfo, target: Target, verb: str, dry_run: bool
    ) -> web.StreamResponse:
        resource = target.resource
        assert resource is not None
        namespace = target.namespace or ""
        sub = target.subresource
        self.registry.require_namespace(resource, namespace, creating=False)
        if sub == "status":
            if verb == "get":
                return raw_response(self.registry.get(resource, namespace, target.name).raw)
            body = await self._body(request)
            admit = self._admit(request, user, target, verb)
            if verb == "update":
                return json_response(
                    self.registry.update(
                        resource,
                        namespace,
                        target.name,
                        body,
                        "status",
                        dry_run=dry_run,
                        admit=admit,
                    )
                )
            if verb == "patch":
                return json_response(
                    self.registry.patch(
                        resource,
                        namespace,
                        target.name,
                        request.content_type,
                        body,
                        "status",
                        dry_run=dry_run,
                        admit=admit,
                    )
                )
        if sub == "log" and verb == "get":
            pod = self.registry.get(resource, namespace, target.name).obj
            key = (namespace, target.name)
            uid = pod["metadata"]["uid"]

            def current() -> Obj | None:
                entry = self.store.get(resource.key, key)
                same = entry is not None and entry.obj["metadata"]["uid"] == uid
                return entry.obj if entry is not None and same else None

            return await serve_log(request, self.state_dir, pod, current)
        if sub == "token" and verb == "create":
            body = await self._body(request)
            return json_response(
                request_token(self.registry, self.tokens, namespace, target.name, body), 201
            )
        if sub == "scale":
            workload = self.registry.get(resource, namespace, target.name).obj
            if verb == "get":
                return json_response(scale_of(workload))
            body = await self._body(request)
            if verb == "patch":
                body = apply_patch(request.content_type, scale_of(workload), body)
            if verb in ("patch", "update"):
                return json_response(rescale(self.registry, resource, namespace, target.name, body))
        if sub == "binding" and verb == "create":
            body = await self._body(request)
            return json_response(bind_pod(self.registry, namespace, target.name, body), 201)
        raise status.ApiError(
            405,
            "the server does not allow this method on the requested resource",
            reason="MethodNotAllowed",
        )

    async def _virtual(
        self, request: web.Request, user: UserInfo, resource: ResourceType
    ) -> web.StreamResponse:
        if "protobuf" in request.content_type:
            body: Any = decode_review(await request.read())
        else:
            body = await self._body(request)
        if resource.plural == "selfsubjectaccessreviews":
            return json_response(self_subject_access_review(self.authorizer, user, body), 201)
        return json_response(self_subject_review(user, body), 201)


__all__ = ["ApiServer", "now_rfc3339"]
