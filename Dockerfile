# syntax=docker/dockerfile:1
# One image, three entry points: razorfs-operator (runs as the non-root user below),
# razorfs-node (the CSI plugin; the chart runs it privileged as root for FUSE) and razorfs
# (the mount daemon the plugin starts). Build: docker build -t ghcr.io/razorfs/razorfs:0.1.0 .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: wheels for the package and every dependency (pyfuse3 compiles against libfuse3) ---
FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential pkg-config libfuse3-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proto/ proto/
COPY nodeplugin/ nodeplugin/
COPY operator/ operator/
# The gRPC stubs are generated, never committed: generate them before building the wheel.
RUN pip install --no-cache-dir "grpcio-tools>=1.60" \
 && python proto/generate.py \
 && pip wheel --no-cache-dir --wheel-dir /wheels .

# --- runtime: fuse3 userland, the wheels, an unprivileged default user ---
FROM ${PYTHON_IMAGE} AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      fuse3 libfuse3-3 ca-certificates util-linux \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 razorfs \
 && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin razorfs
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels razorfs \
 && rm -rf /wheels \
 && razorfs-operator --help >/dev/null \
 && razorfs-node --help >/dev/null \
 && razorfs --help >/dev/null
ENV PYTHONUNBUFFERED=1
# The operator's default; the node DaemonSet overrides it with runAsUser 0 (FUSE needs root).
USER 10001:10001
ENTRYPOINT []
CMD ["razorfs-operator"]
