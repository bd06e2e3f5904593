#!/usr/bin/env bash
# Java 17+ for Spark (pyspark runs a JVM): install Debian's headless JRE when
# `java` is missing. Called by `make install`; a no-op where Java is present.
# Needs root or sudo for apt-get (as GitHub's Ubuntu runners have).
set -euo pipefail

PACKAGE="${JAVA_PACKAGE:-openjdk-17-jre-headless}"

if command -v java >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "error: java is missing and neither root nor sudo can install $PACKAGE" >&2
        exit 2
    fi
    SUDO="sudo"
fi
echo "installing $PACKAGE for Spark (batch scoring, docs/scoring.md)" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$PACKAGE"
java -version
