# syntax=docker/dockerfile:1
# One image, three entry points: razorfs-operator (runs as the non-root user below),
# razorfs-node (the CSI plugin; the chart runs it privileged as root for FUSE) and razorfs
# (the mount daemon the plugin starts). Build: docker build -t ghcr.io/razorfs/razorfs:0.1.0 .
#
# Offline builds: a `wheelhouse/` folder in the build context (wheels for every dependency and for
# grpcio-tools and hatchling) is used instead of PyPI, and then no compiler is installed. The local
# test node builds this way with buildah on a debootstrap base (tests/realparts/cluster/images.py).

ARG BASE_IMAGE=debian:bookworm-slim

# --- base: Debian's Python 3.11 and the fuse3 userland (installed only when the base lacks them) ---
FROM ${BASE_IMAGE} AS base
ENV RUNTIME_PACKAGES="python3 python3-venv libfuse3-3 fuse3 ca-certificates"
RUN dpkg -s $RUNTIME_PACKAGES >/dev/null 2>&1 \
 || { apt-get update \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $RUNTIME_PACKAGES \
      && rm -rf /var/lib/apt/lists/*; }

# --- build: wheels for the package and every dependency (pyfuse3 compiles against libfuse3) ---
FROM base AS build
WORKDIR /src
COPY . .
RUN set -e; \
    if [ -d wheelhouse ]; then \
      export PIP_NO_INDEX=1 PIP_FIND_LINKS=/src/wheelhouse; \
    else \
      apt-get update; \
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        gcc libc6-dev python3-dev pkg-config libfuse3-dev; \
    fi; \
    python3 -m venv /opt/build; \
    /opt/build/bin/pip install --no-cache-dir "grpcio-tools>=1.60" "hatchling>=1.24"; \
    /opt/build/bin/python proto/generate.py; \
    /opt/build/bin/pip wheel --no-cache-dir --no-build-isolation --wheel-dir /wheels .

# --- runtime: the wheels in a virtualenv, an unprivileged default user ---
FROM base AS runtime
RUN groupadd --gid 10001 razorfs \
 && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin razorfs
COPY --from=build /wheels /wheels
RUN python3 -m venv /opt/razorfs \
 && /opt/razorfs/bin/pip install --no-cache-dir --no-index --find-links=/wheels razorfs \
 && rm -rf /wheels
ENV PATH=/opt/razorfs/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1
RUN razorfs-operator --help >/dev/null \
 && razorfs-node --help >/dev/null \
 && razorfs --help >/dev/null
# The operator's default; the node DaemonSet overrides it with runAsUser 0 (FUSE needs root).
USER 10001:10001
ENTRYPOINT []
CMD ["razorfs-operator"]
