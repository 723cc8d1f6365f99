# syntax=docker/dockerfile:1.20
# The image of every service (1.20: COPY --parents is stable). The build context is the
# repository root (libs/ and proto/ are shared). `make docker-<svc>` passes the build
# args from the service's pyproject.toml and manifest (scripts/image_args.py), or by hand:
# uv run python scripts/image_args.py device-srv | xargs -d "\n" docker build -f THIS .
ARG BASE_IMAGE=python:3.12-slim
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# Builder: the locked dependencies of this one service, installed into /app/.venv.
FROM ${BASE_IMAGE} AS builder
ARG SERVICE
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy
WORKDIR /src
# Every workspace member's pyproject.toml, so that --locked can check uv.lock; the
# third-party dependencies get a layer of their own that source edits leave cached.
COPY pyproject.toml uv.lock ./
COPY --parents */pyproject.toml ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --package ${SERVICE} --no-editable --no-install-workspace
COPY proto/ proto/
COPY libs/ libs/
COPY ${SERVICE}/ ${SERVICE}/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --package ${SERVICE} --no-editable

# Final stage: the interpreter, the venv and the service's cluster bootstrap; no uv, no
# sources, no compilers. The venv is root-owned and read-only for the service user.
FROM ${BASE_IMAGE}
ARG BASE_IMAGE
ARG SERVICE
ARG PACKAGE
ARG DESCRIPTION
ARG PORTS
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="${SERVICE}" \
      org.opencontainers.image.description="${DESCRIPTION}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/app/.venv/bin:$PATH \
    HOME=/tmp \
    MICRO_CONFIG_DIR=/app/${SERVICE}/configs/k8s \
    MICRO_SERVICE_PACKAGE=${PACKAGE}
WORKDIR /app
COPY --from=builder /app/.venv /app/.venv
# Only the cluster bootstrap: configs/config.yaml is for local runs (the demo user).
COPY ${SERVICE}/configs/k8s/ /app/${SERVICE}/configs/k8s/
USER 10001:10001
EXPOSE ${PORTS}
# An exec-form ENTRYPOINT expands no variables: sh names the package, then exec makes
# python PID 1 (it gets SIGTERM); a pod's `args` arrive as "$@".
ENTRYPOINT ["/bin/sh", "-c", "exec python -m \"$MICRO_SERVICE_PACKAGE\" \"$@\"", "--"]
