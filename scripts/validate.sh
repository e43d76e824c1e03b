#!/usr/bin/env bash
# Template checks: the layer's requirements.txt against uv.lock, then cfn-lint,
# `sam validate --lint` and checkov, each a pinned, isolated tool run
# through uvx (installed once into uv's cache, reused after; the project's .venv is untouched).
# Offline apart from the package registry (first run only).
# Every suppression lives inline in template.yaml, next to the resource, with its reason.
set -euo pipefail

CFN_LINT_VERSION="1.58.0"
CHECKOV_VERSION="3.3.30"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TEMPLATE="template.yaml"

# sam validate needs a region to build its lint config; none is contacted.
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export AWS_REGION="${AWS_REGION:-$AWS_DEFAULT_REGION}"

step() { printf '\n== %s\n' "$*"; }

step "layer requirements in sync with uv.lock"
uv run --no-project --python 3.13 python scripts/export_layer_requirements.py --check
echo "layers/storewire/requirements.txt: in sync"

step "cfn-lint ${CFN_LINT_VERSION}"
uvx --python 3.13 --from "cfn-lint==${CFN_LINT_VERSION}" cfn-lint "$TEMPLATE"
echo "cfn-lint: no findings"

step "sam validate --lint"
bash scripts/sam.sh validate --lint --template-file "$TEMPLATE"

step "checkov ${CHECKOV_VERSION}"
# --skip-download: no guideline/policy download from the vendor's platform; no PyPI update check.
CKV_SKIP_PACKAGE_UPDATE_CHECK=true \
    uvx --python 3.13 --from "checkov==${CHECKOV_VERSION}" \
    checkov -f "$TEMPLATE" --framework cloudformation --quiet --compact --skip-download

step "template checks passed"
