#!/usr/bin/env bash
# Lambda package budgets, x86_64: per function the deployment zip (≤ 3 MiB), the bootstrap,
# the cold start up to the first Runtime API request (median ≤ 6 ms) and the resident
# memory once it waits for an event (≤ 30 MiB). `floor` (tools/floor) is a bare
# lambda_runtime function built and measured the same way: the start the runtime itself
# costs on this machine. When ../shared/tools/init_time.py is present, each bootstrap is
# also measured by it (spawn → first poll, timed from Python before the spawn).
#
#   tools/lambda-budgets.sh            package with cargo-lambda, then 20 cold starts each
#   LAMBDA_BUDGETS_RUNS=5 tools/lambda-budgets.sh
#   tools/lambda-budgets.sh --strict   also exit 1 when a budget is exceeded
#
# Packaging is `cargo lambda build --release --output-format zip` (cargo-lambda and zig come
# pinned from tools/requirements.txt into ./.venv); the zips land in
# target/lambda/<function>/bootstrap.zip whatever CARGO_TARGET_DIR is. The deployable
# packages, arm64 or x86_64, are `./dev package`'s (tools/package.sh); this machine cannot
# start an arm64 bootstrap, so starts are measured on x86_64 only.
# Should cargo-lambda fail, the script says so and packages `cargo build --release` output
# with Python's zipfile instead (deflate, level 9) into target/lambda-budgets/.
set -euo pipefail
cd "$(dirname "$0")/.."

FUNCTIONS=(start-builds build-completed scan-gate retention-cleanup reconciler)
MEASURED=("${FUNCTIONS[@]}" floor)
RUNS=${LAMBDA_BUDGETS_RUNS:-20}
STRICT=()
[[ "${1:-}" == "--strict" ]] && STRICT=(--strict)

./dev setup
VENV="$PWD/.venv"
PY="$VENV/bin/python"
export PATH="$VENV/bin:$PATH" # `cargo lambda` finds cargo-lambda, and zig through `python -m ziglang`
source tools/lambda-codegen.sh

OUT=target/lambda-budgets
mkdir -p "$OUT"
LOG="$OUT/package.log"

packages=()
for f in "${MEASURED[@]}"; do packages+=(-p "archgate-$f"); done

echo "## Lambda package budgets (x86_64)"
echo
echo "- $(rustc --version)"
echo "- $(cargo --version)"
echo "- $(cargo lambda --version 2>/dev/null || echo 'cargo-lambda: not installed')"
echo "- zig $("$PY" -m ziglang version 2>/dev/null || echo 'not installed')"
echo "- $("$PY" --version), Linux $(uname -r), $(nproc) CPUs"
echo

# cargo-lambda, and every zip it wrote is from this run.
package_with_cargo_lambda() {
  local marker="$OUT/.package-start" f
  touch "$marker"
  cargo lambda build --release --locked --output-format zip --lambda-dir "$PWD/target/lambda" \
    "${packages[@]}" </dev/null >"$LOG" 2>&1 || return 1
  for f in "${MEASURED[@]}"; do
    [[ -n "$(find "target/lambda/$f/bootstrap.zip" -newer "$marker" 2>/dev/null)" ]] || {
      echo "target/lambda/$f/bootstrap.zip was not written" >>"$LOG"
      return 1
    }
  done
}

zips=()
echo "packaging: cargo lambda build --release --output-format zip (log: $LOG)" >&2
if package_with_cargo_lambda; then
  echo "Packaged by \`cargo lambda build --release --output-format zip\` → \`target/lambda/<function>/bootstrap.zip\`."
  for f in "${MEASURED[@]}"; do zips+=(--function "$f=target/lambda/$f/bootstrap.zip"); done
else
  echo "cargo-lambda could not package here; its last lines:" >&2
  tail -n 15 "$LOG" >&2
  echo "**cargo-lambda could not package here (see $LOG); fallback: \`cargo build --release\` + Python zipfile (deflate -9) → \`$OUT/<function>/bootstrap.zip\`.**"
  cargo build --release --locked --quiet --target x86_64-unknown-linux-gnu "${packages[@]}"
  for f in "${MEASURED[@]}"; do
    mkdir -p "$OUT/$f"
    "$PY" - "target/x86_64-unknown-linux-gnu/release/$f" "$OUT/$f/bootstrap.zip" <<'PY'
import sys, zipfile
binary, archive = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    info = zipfile.ZipInfo.from_file(binary, "bootstrap")
    info.external_attr = 0o100755 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    with open(binary, "rb") as src:
        z.writestr(info, src.read(), compresslevel=9)
PY
    zips+=(--function "$f=$OUT/$f/bootstrap.zip")
  done
fi
echo

# The sample configuration (shared/src/config/sample.rs; tests/template.rs holds this list
# equal to it); every function gets all of it, as template.yaml's Globals give it.
"$PY" tools/runtime_api_stub.py measure --runs "$RUNS" "${STRICT[@]}" \
  --env ARCHGATE_SOURCE_BUCKET=archgate-source-123456789012 \
  --env ARCHGATE_SOURCE_PREFIX=releases/ \
  --env ARCHGATE_REPOSITORY=myapp \
  --env ARCHGATE_AMD64_PROJECT=archgate-build-amd64 \
  --env ARCHGATE_ARM64_PROJECT=archgate-build-arm64 \
  --env ARCHGATE_MANIFEST_MODE=native \
  --env ARCHGATE_MANIFEST_PROJECT=archgate-manifest \
  --env ARCHGATE_LEDGER_TABLE=archgate-ledger \
  --env ARCHGATE_EVENT_BUS=archgate \
  --env ARCHGATE_MOVING_TAGS=latest \
  --env ARCHGATE_RETENTION_REPOSITORIES=myapp \
  --env ARCHGATE_SIGNING_KEY=alias/archgate-releases \
  "${zips[@]}"

# The same bootstraps through the shared start-time probe, when this checkout has it: each
# function's 21 starts right after 21 of the floor's, so both see the same machine; the
# budget is a median within 2x of the floor measured beside it. init_time.py's sample
# configuration lacks the signing key, which every function requires.
# INIT_TIME names the probe when this checkout is not beside ../shared.
INIT_TIME=${INIT_TIME:-../shared/tools/init_time.py}
if [[ -f "$INIT_TIME" ]]; then
  echo
  echo "Also by \`$INIT_TIME BOOTSTRAP 21\` (its sample configuration and the signing key; timed"
  echo "from Python before the spawn to its stub seeing the poll), the floor's 21 starts run"
  echo "just before each function's:"
  echo
  echo "| function | init_time.py | floor beside it | function / floor |"
  echo "|---|---|---|---|"
  scratch=$(mktemp -d)
  for spec in "${zips[@]}"; do
    [[ "$spec" == --function ]] && continue
    name=${spec%%=*} zip=${spec#*=}
    mkdir -p "$scratch/$name"
    "$PY" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("bootstrap", sys.argv[2])' "$zip" "$scratch/$name"
    chmod +x "$scratch/$name/bootstrap"
  done
  median() { sed -n 's/^init median \([0-9.]*\) ms.*/\1/p' <<<"$1"; }
  for name in "${FUNCTIONS[@]}"; do
    floor=$(ARCHGATE_SIGNING_KEY=alias/archgate-releases "$PY" "$INIT_TIME" "$scratch/floor/bootstrap" 21)
    own=$(ARCHGATE_SIGNING_KEY=alias/archgate-releases "$PY" "$INIT_TIME" "$scratch/$name/bootstrap" 21)
    ratio=$("$PY" -c 'import sys; f, o = map(float, sys.argv[1:]); print(f"{o / f:.2f}")' "$(median "$floor")" "$(median "$own")" 2>/dev/null || echo "?")
    echo "| $name | $own | $floor | $ratio |"
  done
  rm -rf "$scratch"
fi
