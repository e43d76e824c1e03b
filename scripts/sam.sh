#!/usr/bin/env bash
# Run the AWS SAM CLI as an isolated, pinned tool: `bash scripts/sam.sh build|deploy|...`.
# uvx installs it once into uv's cache (~/.cache/uv) and reuses it; nothing is installed globally
# and the project's .venv is untouched. Runs from the repository root (template.yaml, samconfig.toml).
set -euo pipefail

SAM_CLI_VERSION="1.170.0"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

export SAM_CLI_TELEMETRY=0
# SAM keeps its metadata in ~/.aws-sam by default; keep it inside the (git-ignored) build dir.
export __SAM_CLI_APP_DIR="${__SAM_CLI_APP_DIR:-$ROOT/.aws-sam/cli}"
mkdir -p "$__SAM_CLI_APP_DIR"

exec uvx --python 3.13 --from "aws-sam-cli==${SAM_CLI_VERSION}" sam "$@"
