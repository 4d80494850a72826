#!/usr/bin/env bash
# The release profile, measured: start-builds packaged by cargo-lambda under profile
# variants (each in its own target directory, so each is a full build), then its zip size,
# cold start and resident memory against the local Runtime API stub.
#
#   tools/profile-variants.sh                  the variants below
#   tools/profile-variants.sh "opt-level=z"    named variants only
set -euo pipefail
cd "$(dirname "$0")/.."
./dev setup
VENV="$PWD/.venv"
export PATH="$VENV/bin:$PATH"

declare -A VARIANTS=(
  ["profile.release (s, fat LTO, 1 CGU, strip, abort)"]=""
  ["opt-level=3"]="CARGO_PROFILE_RELEASE_OPT_LEVEL=3"
  ["opt-level=z"]="CARGO_PROFILE_RELEASE_OPT_LEVEL=z"
  ["panic=unwind"]="CARGO_PROFILE_RELEASE_PANIC=unwind"
  ["thin LTO, 16 CGU"]="CARGO_PROFILE_RELEASE_LTO=thin CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16"
)
selected=("$@")
[[ ${#selected[@]} -eq 0 ]] && selected=("${!VARIANTS[@]}")

args=()
for name in "${selected[@]}"; do
  overrides=${VARIANTS[$name]}
  dir="target/variants/$(echo "$name" | tr -c 'A-Za-z0-9' '-' | cut -c1-40)"
  echo "building: $name" >&2
  # shellcheck disable=SC2086
  env $overrides CARGO_TARGET_DIR="$dir" cargo lambda build --release --locked --output-format zip \
    -p archgate-start-builds --lambda-dir "$dir/lambda" </dev/null >"$dir.log" 2>&1 || {
    echo "$name: build failed, see $dir.log" >&2
    continue
  }
  args+=(--function "start-builds [${name//=/ }]=$dir/lambda/start-builds/bootstrap.zip")
done

.venv/bin/python tools/runtime_api_stub.py measure --runs "${LAMBDA_BUDGETS_RUNS:-20}" \
  --env ARCHGATE_SOURCE_BUCKET=archgate-source-123456789012 --env ARCHGATE_SOURCE_PREFIX=releases/ \
  --env ARCHGATE_REPOSITORY=myapp --env ARCHGATE_AMD64_PROJECT=archgate-build-amd64 \
  --env ARCHGATE_ARM64_PROJECT=archgate-build-arm64 --env ARCHGATE_MANIFEST_MODE=native \
  --env ARCHGATE_LEDGER_TABLE=archgate-ledger --env ARCHGATE_EVENT_BUS=archgate \
  "${args[@]}"
