# The MLflow tracking server of the local stack (compose.yaml, docs/stack.md):
# MLflow with the drivers its stores need, which the official image lacks:
# psycopg (3) for the PostgreSQL backend store, boto3 for S3 artifacts.
#
#   docker compose build mlflow
#
# Keep MLFLOW_VERSION equal to mlflow's version in uv.lock: client and server
# of one version agree on the store schema and the REST API (a test checks).

ARG PYTHON_IMAGE=docker.io/library/python:3.11-slim@sha256:90744cff8f32887f075c47d747a173ff333e9e98801667af93c357fa9f5e28ff

FROM ${PYTHON_IMAGE}

ARG MLFLOW_VERSION=3.17.2
ARG PSYCOPG_VERSION=3.3.9
ARG BOTO3_VERSION=1.43.117

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH

RUN python3 -m venv /opt/venv \
    && pip install --quiet \
        "mlflow==${MLFLOW_VERSION}" \
        "psycopg[binary]==${PSYCOPG_VERSION}" \
        "boto3==${BOTO3_VERSION}" \
    && pip check

# A fixed non-root uid; the server keeps no state in the container (runs in
# PostgreSQL, artifacts in S3).
RUN groupadd --gid 10002 mlflow \
    && useradd --no-log-init --uid 10002 --gid mlflow \
        --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin mlflow
USER 10002:10002
WORKDIR /tmp
EXPOSE 5000

HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/health', timeout=2)"]

CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000"]
