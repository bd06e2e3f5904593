# One entry point for people and CI: every target is a thin call into the
# package or a standard tool. `make help` lists them.

PYTHON ?= python3.11
UV_VERSION := 0.13.9
VENV := .venv
UV := .uv/bin/uv
# dvc.yaml's stage commands call `churn`: put the project's tools first on PATH.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
# Precompile at install: the first import of great_expectations, mlflow and
# scikit-learn otherwise compiles thousands of files (and never caches them
# where PYTHONDONTWRITEBYTECODE is set).
export UV_COMPILE_BYTECODE := 1
export GX_ANALYTICS_ENABLED := false

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(UV):
	$(PYTHON) -m venv .uv
	.uv/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.installed: $(UV) pyproject.toml uv.lock
	$(UV) sync --locked --all-extras --python "$(PYTHON)" --quiet --reinstall-package churn
	@touch $@

.PHONY: install
install: $(VENV)/.installed ## Create .venv and install the locked dependencies (and Java for Spark)
	@scripts/ensure-java.sh

.PHONY: demo
demo: install ## Run the whole pipeline (dvc repro) and show the metrics
	dvc repro
	@echo
	churn summary

# make adopt DATA=path/to/table.csv LABEL=column POSITIVE=value [ID=column]
DATA ?=
LABEL ?=
POSITIVE ?=
ID ?=

.PHONY: adopt
adopt: install ## Make your table the project's data: DATA=t.csv LABEL=col POSITIVE=value [ID=col] (docs/adopt.md)
	$(if $(and $(DATA),$(LABEL),$(POSITIVE)),,$(error usage: make adopt DATA=path/to/table.csv LABEL=column POSITIVE=value [ID=column]))
	churn adopt --data "$(DATA)" --label "$(LABEL)" --positive "$(POSITIVE)" $(if $(ID),--id "$(ID)")

.PHONY: repro
repro: install ## Run the pipeline stages whose inputs changed
	dvc repro

.PHONY: test
test: install ## Run the test suite (unit, data, model, integration)
	pytest

.PHONY: test-fork
test-fork: install ## The whole suite in a fork that swaps in the synthetic domain (proves the template is domain-free)
	CHURN_FORK_SUITE=full pytest -m integration -rP tests/integration/test_fork.py

.PHONY: test-fast
test-fast: install ## Run the tests that take seconds (no integration)
	pytest -m "not integration"

BASELINE ?= main
# STEPS: the CI steps' outcomes (reports/ci-steps.tsv) when the gate judges a CI run.
STEPS ?=

.PHONY: gate
gate: install ## Check the model against BASELINE's gate rules and metrics (main); STEPS=reports/ci-steps.tsv in CI
	churn gate --baseline "$(BASELINE)" $(if $(STEPS),--steps "$(STEPS)")

# The CI path, defined once: the workflows' jobs, `.ci/run` and a laptop all
# call these targets (docs/ci.md).
.PHONY: ci
ci: ci-checks ci-pipeline ## The whole pull-request path: checks, then the pipeline, report and gate vs BASELINE (main)
# ...under the variables GitHub's runners set (rich/typer read them): no
# "passes here, fails there".
ci: export CI := true
ci: export GITHUB_ACTIONS := true

.PHONY: ci-checks
ci-checks: lint test test-fork ## CI's checks job: lint, the tests, the tests in a synthetic fork

.PHONY: ci-pipeline
ci-pipeline: install ## CI's pipeline job: dvc repro, load test, reproduction check, report (always) and gate vs BASELINE
	BASELINE="$(BASELINE)" scripts/ci-pipeline.sh

# Branch protection on GitHub (docs/ci.md): the required checks `checks` and
# `model-gate`, a code owner's review (.github/CODEOWNERS), no force pushes.
.PHONY: protect-branch
protect-branch: ## Protect main on GitHub through gh api: required checks, code-owner review (needs gh, admin)
	scripts/protect-branch.sh

# LOG_DIR: the service's prediction log, a directory or s3://bucket/prefix
# (CHURN_PREDICTION_LOG_DIR / CHURN_PREDICTION_LOG_S3_URI).
LOG_DIR ?=
RETRAIN_FORCE ?=

.PHONY: monitor
monitor: install ## Is retraining due? Drift and decay in LOG_DIR (exit 1: yes; docs/monitoring.md)
	$(if $(LOG_DIR),,$(error usage: make monitor LOG_DIR=path/or/s3://bucket/prefix))
	churn monitor --log-dir "$(LOG_DIR)" --json reports/monitor.json

.PHONY: retrain
retrain: install ## Retrain if LOG_DIR says it is due (or RETRAIN_FORCE=1), gate and report vs HEAD
	LOG_DIR="$(LOG_DIR)" FORCE="$(RETRAIN_FORCE)" scripts/retrain.sh

.PHONY: ab-report
ab-report: install ## Decide the A/B test (and shadow comparison) from LOG_DIR
	$(if $(LOG_DIR),,$(error usage: make ab-report LOG_DIR=path/or/s3://bucket/prefix))
	churn ab-report --log-dir "$(LOG_DIR)"

.PHONY: lint
lint: install ## Check style, formatting, types, import layers, the Dockerfile, workflows, the compose stack and the Kubernetes manifests
	ruff check .
	ruff format --check .
	mypy
	lint-imports
	hadolint Dockerfile
	shellcheck -x containers/*.sh deploy/deploy.sh deploy/targets/*.sh scripts/*.sh .ci/run
	actionlint
	zizmor --offline .github/workflows
	zizmor --offline --persona auditor .github/workflows .github/dependabot.yml
	$(MAKE) --no-print-directory compose-check
	$(MAKE) --no-print-directory k8s-check

# The Kubernetes manifests (deploy/kubernetes; docs/deploy.md), checked
# without a cluster: kubectl's kustomize renders each overlay,
# kubernetes-validate checks it against Kubernetes 1.37's schemas, checkov
# lints it. checkov pins an older boto3 than the pipeline's, so it lives in an
# environment of its own, from uv.lock's k8s-lint group.
CHECKOV_VENV := .venv-checkov

$(CHECKOV_VENV)/.installed: $(UV) pyproject.toml uv.lock
	UV_PROJECT_ENVIRONMENT="$(CURDIR)/$(CHECKOV_VENV)" $(UV) sync --locked --only-group k8s-lint --python "$(PYTHON)" --quiet
	@touch $@

.PHONY: k8s-check
k8s-check: install $(CHECKOV_VENV)/.installed ## Render, schema-validate and lint every Kubernetes overlay (no cluster needed)
	scripts/k8s-check.sh

# The local stack (compose.yaml, deploy/prometheus, deploy/grafana; docs/stack.md),
# checked without a container engine: docker-compose, yamllint and promtool
# come from Debian's packages the first time.
.PHONY: compose-check
compose-check: install ## Validate compose.yaml, the Prometheus rules and the Grafana dashboard
	containers/compose-check.sh

.PHONY: format
format: install ## Format the code and fix what ruff can fix
	ruff format .
	ruff check --fix .

.PHONY: bench
bench: install ## Time and measure each stage on 100k and 1M synthetic rows
	python bench/scale.py --rows 100000 1000000 --out bench/results

.PHONY: bench-serving
bench-serving: install ## Serve the model with mlflow and churn serve, load both with wrk
	command -v wrk || (apt-get update && apt-get install -y wrk)
	python bench/serving.py --out bench/results/serving.json

.PHONY: bench-prediction-log
bench-prediction-log: install ## Load churn serve with the prediction log off and on (wrk), and time its steps
	command -v wrk || (apt-get update && apt-get install -y wrk)
	python bench/prediction_log.py --out bench/results/prediction_log.json

.PHONY: bench-rollouts
bench-rollouts: install ## Load churn serve without a candidate, with an A/B test and in shadow mode (wrk)
	command -v wrk || (apt-get update && apt-get install -y wrk)
	python bench/rollouts.py --out bench/results/rollouts.json

.PHONY: bench-drift
bench-drift: install ## False-alarm and detection rates of churn drift on the real data
	python bench/drift.py --out bench/results

.PHONY: loadtest
loadtest: install ## Load-test the API on 127.0.0.1 with locust; fail on the SLO in params.yaml
	python loadtest/run.py

# make drift CURRENT=recent.csv [REFERENCE=...]: the reference defaults to
# the training split (dvc repro or dvc pull makes it).
REFERENCE ?= data/prepared/train.csv

.PHONY: drift
drift: install ## Compare CURRENT=file.csv with the training data; exit 1 on drift (docs/monitoring.md)
	$(if $(CURRENT),,$(error usage: make drift CURRENT=path/to/recent.csv [REFERENCE=$(REFERENCE)]))
	churn drift --reference "$(REFERENCE)" --current "$(CURRENT)" --report reports/drift.html --json reports/drift.json

# Batch scoring (docs/scoring.md): make score INPUT=records.csv [OUTPUT=...]
# [ENGINE=spark] [OVERWRITE=1]. INPUT and OUTPUT may be s3://bucket/key
# (AWS_* variables, AWS_ENDPOINT_URL for an S3-compatible store).
INPUT ?=
OUTPUT ?= reports/scores/scores.parquet
ENGINE ?= local
OVERWRITE ?=

.PHONY: score
score: install ## Score INPUT (CSV/Parquet, path or s3://) into OUTPUT; exit 1 if rows were rejected
	$(if $(INPUT),,$(error usage: make score INPUT=path/or/s3://bucket/key [OUTPUT=$(OUTPUT)] [ENGINE=spark] [OVERWRITE=1]))
	churn score --input "$(INPUT)" --output "$(OUTPUT)" --engine "$(ENGINE)" $(if $(OVERWRITE),--overwrite)

.PHONY: score-report
score-report: install ## Markdown of the scoring run at OUTPUT, with reports/drift.json when present
	churn score-report --output "$(OUTPUT)" $(if $(wildcard reports/drift.json),--drift-json reports/drift.json)

.PHONY: bench-score
bench-score: install ## Batch scoring rows/s and peak memory on 100k, 1M, 10M rows: local, Spark, ONNX floor
	python bench/score.py --rows 100000 1000000 10000000 --out bench/results

.PHONY: clean
clean: ## Remove the environments and caches (keeps data, models, MLflow runs)
	rm -rf $(VENV) $(CHECKOV_VENV) .uv .mypy_cache .ruff_cache .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# DVC remote on S3 or any S3-compatible store (docs/remotes.md). The default
# remote stays local; `make s3-remote` switches to s3://S3_BUCKET/S3_PREFIX at
# S3_ENDPOINT_URL (set it empty for AWS S3 itself). Credentials are never
# written here: export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or use
# `dvc remote modify --local` (.dvc/config.local, ignored by Git).
# `make s3-server` + `make s3-bucket` give a throwaway local store (moto).
# DVC_CONFIG_LEVEL=local writes .dvc/config.local instead of .dvc/config.
S3_PORT ?= 9000
S3_ENDPOINT_URL ?= http://127.0.0.1:$(S3_PORT)
S3_BUCKET ?= churn
S3_PREFIX ?= dvc
DVC_REMOTE ?= s3
DVC_CONFIG_LEVEL ?= project

.PHONY: s3-remote
s3-remote: ## Make s3://S3_BUCKET/S3_PREFIX (at S3_ENDPOINT_URL) the default DVC remote
	dvc remote add --$(DVC_CONFIG_LEVEL) --force --default "$(DVC_REMOTE)" "s3://$(S3_BUCKET)/$(S3_PREFIX)"
	$(if $(S3_ENDPOINT_URL),dvc remote modify --$(DVC_CONFIG_LEVEL) "$(DVC_REMOTE)" endpointurl "$(S3_ENDPOINT_URL)")
	dvc remote modify --$(DVC_CONFIG_LEVEL) "$(DVC_REMOTE)" connect_timeout 5
	dvc remote modify --$(DVC_CONFIG_LEVEL) "$(DVC_REMOTE)" read_timeout 15
	dvc remote modify --$(DVC_CONFIG_LEVEL) "$(DVC_REMOTE)" verify true

.PHONY: s3-server
s3-server: install ## Run a throwaway S3-compatible server (moto, in memory) on 127.0.0.1:S3_PORT
	moto_server -H 127.0.0.1 -p "$(S3_PORT)"

.PHONY: s3-bucket
s3-bucket: ## Create S3_BUCKET on the local server of `make s3-server`
	curl --fail --silent --show-error --request PUT "$(S3_ENDPOINT_URL)/$(S3_BUCKET)"

# MLflow tracking server (docs/mlflow.md): runs and the model registry in a
# SQLite file, artifacts in MLFLOW_ARTIFACTS on S3, proxied by the server (so
# clients need no S3 credentials; the server reads AWS_* from its environment).
# MLflow does not create the bucket: `make s3-bucket` does, for the local one.
# Then: export MLFLOW_TRACKING_URI=http://127.0.0.1:$(MLFLOW_PORT) and `make repro`.
MLFLOW_PORT ?= 5000
MLFLOW_BACKEND_STORE ?= sqlite:///mlflow-server.db
MLFLOW_ARTIFACTS ?= s3://$(S3_BUCKET)/mlflow

.PHONY: mlflow-server
mlflow-server: install ## Run an MLflow server on 127.0.0.1:MLFLOW_PORT (SQLite, artifacts on S3)
	$(if $(S3_ENDPOINT_URL),MLFLOW_S3_ENDPOINT_URL=$(S3_ENDPOINT_URL)) \
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false \
	mlflow server --host 127.0.0.1 --port "$(MLFLOW_PORT)" --workers 1 \
		--backend-store-uri "$(MLFLOW_BACKEND_STORE)" --artifacts-destination "$(MLFLOW_ARTIFACTS)"

# Containers, with podman (installed with apt-get when missing). Where no
# registry is reachable, the base image is a local stand-in for
# python:3.11-slim built once with debootstrap (containers/base-image.sh);
# `make container-test PYTHON_IMAGE=python:3.11-slim` uses the official one.
CONTAINER_IMAGE ?= localhost/churn-serving:latest
PYTHON_IMAGE ?= localhost/python:3.11-slim
CONTAINER_ENV := IMAGE="$(CONTAINER_IMAGE)" PYTHON_IMAGE="$(PYTHON_IMAGE)" UV_VERSION="$(UV_VERSION)"

.PHONY: container-build
container-build: install ## Build the serving image (needs the model: make repro), pinned to it
	$(CONTAINER_ENV) containers/build.sh

.PHONY: container-test
container-test: install ## Build the serving image, run it on 127.0.0.1 and check it
	$(CONTAINER_ENV) containers/test.sh

# DIGEST_REF_FILE: where to write the pushed image's REPOSITORY@sha256:... (optional).
DIGEST_REF_FILE ?=

.PHONY: container-push
container-push: ## Push CONTAINER_IMAGE (a registry name) and EXTRA_TAGS (e.g. latest)
	$(CONTAINER_ENV) EXTRA_TAGS="$(EXTRA_TAGS)" DIGEST_REF_FILE="$(DIGEST_REF_FILE)" containers/push.sh

# Blue/green deploys (deploy/deploy.sh; DEPLOY_TARGET selects deploy/targets/*.sh,
# podman + HAProxy on this host by default, or kubernetes with KUBE_OVERLAY).
# See docs/deploy.md.
.PHONY: deploy
deploy: install ## Deploy CONTAINER_IMAGE blue/green: new slot, smoke test, switch, check
	deploy/deploy.sh deploy "$(CONTAINER_IMAGE)"

.PHONY: rollback
rollback: install ## Send the traffic back to the previous slot (still running)
	deploy/deploy.sh rollback

.PHONY: deploy-status
deploy-status: ## Show the live slot and what each slot runs
	deploy/deploy.sh status

.PHONY: deploy-test
deploy-test: install container-build ## Deploy, switch and roll back the image under load on 127.0.0.1
	IMAGE="$(CONTAINER_IMAGE)" pytest -m container tests/deploy
