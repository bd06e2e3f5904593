# The churn prediction service: `churn serve` on the ONNX model in models/.
#
#   make container-build    # or: docker build -t churn-serving .
#   docker run --rm -p 127.0.0.1:8000:8000 churn-serving
#
# Settings are CHURN_* environment variables (-e CHURN_API_KEY=..., see
# churn.serving.settings).
#
# The image holds the serving runtime only (the project's core dependencies,
# pinned by uv.lock) and the model files: none of the training stack (DVC,
# Great Expectations, MLflow, scikit-learn, pandas). The model files come
# from `dvc repro` (or `dvc pull`): build after the pipeline has run.

# Builder and runtime must share the base image: the venv links to its Python.
# Pinned by digest (the multi-platform index of python:3.11-slim, 3.11.15 on
# Debian trixie, as docker-library/repo-info records it); the main workflow
# builds on the same string (tests/unit/test_workflows.py checks). To move it:
#   docker buildx imagetools inspect python:3.11-slim --format '{{.Manifest.Digest}}'
ARG PYTHON_IMAGE=docker.io/library/python:3.11-slim@sha256:90744cff8f32887f075c47d747a173ff333e9e98801667af93c357fa9f5e28ff

FROM ${PYTHON_IMAGE} AS builder

# Keep in step with UV_VERSION in the Makefile (which passes it in).
ARG UV_VERSION=0.13.9
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_NO_CACHE=1 \
    UV_COMPILE_BYTECODE=1

# uv reads uv.lock and installs; it stays in the builder.
RUN python3 -m venv /opt/uv \
    && /opt/uv/bin/pip install --quiet "uv==${UV_VERSION}"

WORKDIR /src

# The runtime venv has no pip or setuptools: nothing in it installs packages,
# and it is smaller and has less for scanners to flag. Bytecode is compiled
# here, since the service cannot write it at run time (non-root, read-only).
#
# Dependencies first, in their own layer: editing src/ does not reinstall
# them. They are the lock's core dependencies (no extras, no dev group, not
# the project itself), with hashes, installed exactly as locked.
COPY pyproject.toml uv.lock ./
RUN /opt/uv/bin/uv export --frozen --no-dev --no-emit-project --format requirements-txt \
        --output-file /tmp/requirements.txt --quiet \
    && python3 -m venv --without-pip /opt/venv \
    && /opt/uv/bin/uv pip install --quiet --python /opt/venv/bin/python \
        --require-hashes --no-deps -r /tmp/requirements.txt

# The package itself, without dependencies (they are all installed above).
COPY README.md ./
COPY src ./src
RUN /opt/uv/bin/uv pip install --quiet --python /opt/venv/bin/python --no-deps . \
    && /opt/uv/bin/uv pip check --python /opt/venv/bin/python


FROM ${PYTHON_IMAGE} AS runtime

# A fixed, non-root uid/gid, so file permissions and Kubernetes'
# runAsNonRoot/runAsUser can rely on it. --no-log-init: no lastlog/faillog
# entry, which for a large uid would add a sparse file of that size.
RUN groupadd --gid 10001 churn \
    && useradd --no-log-init --uid 10001 --gid churn \
        --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin churn

COPY --from=builder /opt/venv /opt/venv
# Owned by root and read-only for the service: it never writes them.
COPY models/model.onnx models/model_card.json models/drift_profile.json /app/models/
# The MLflow run record train wrote (kept out of models/, which holds only
# reproducible bytes): the service reports its registered version when the
# record is this model's. The folder may be empty (a model from `dvc pull`).
COPY reports/run/ /app/models/
# The pin: the service refuses any model but this one (at start-up, from
# /admin, from the registry). containers/build.sh passes the ONNX SHA-256 of
# models/ once `churn model-pin` proved it is the model dvc.lock records;
# empty (a bare `docker build`) means no pin.
ARG MODEL_SHA256=""

# ORT_DISABLE_TELEMETRY: onnxruntime's Linux wheels send usage telemetry
# (and keep a device id under $HOME) unless told not to.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ORT_DISABLE_TELEMETRY=1 \
    CHURN_MODEL_DIR=/app/models \
    CHURN_MODEL_SHA256=${MODEL_SHA256}

WORKDIR /app
USER 10001:10001
EXPOSE 8000

# /ready answers 200 once the model is loaded and self-checked (503 before).
# Python's urllib, since the slim image has no curl; urlopen raises on >= 400.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=2)"]

# Last, so a new commit (REVISION) does not invalidate the layers above.
ARG VERSION=unknown
ARG REVISION=unknown
LABEL org.opencontainers.image.title="churn-serving" \
      org.opencontainers.image.description="Prediction service of the model the pipeline trained (FastAPI + ONNX Runtime)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"

CMD ["churn", "serve", "--host", "0.0.0.0", "--port", "8000"]
