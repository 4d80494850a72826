#!/usr/bin/env bash
# Measurements reported in the README: release binary sizes and the pipeline benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "## Release bootstrap sizes (x86_64, profile.release: opt-level s, fat LTO, 1 codegen unit, strip, panic=abort)"
echo
cargo build --release --locked -p archgate-start-builds -p archgate-build-completed -p archgate-scan-gate --quiet
echo "| function | bootstrap | zipped |"
echo "|---|---|---|"
for f in start-builds build-completed scan-gate; do
  python3 - "$f" "target/release/$f" <<'PY'
import io, os, sys, zipfile
name, path = sys.argv[1], sys.argv[2]
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    z.write(path, "bootstrap")
mb = lambda n: n / 1048576
print(f"| {name} | {mb(os.path.getsize(path)):.2f} MB | {mb(len(buf.getvalue())):.2f} MB |")
PY
done
echo

cargo bench --locked -p archgate-cli --bench pipeline
cargo bench --locked -p archgate --bench planner
cargo bench --locked -p archgate --bench retention_calls
tools/lambda-budgets.sh

echo
echo "## Simulation (the same build ./dev test runs: dev profile, the simulated code optimised)"
echo
cargo run --quiet --locked -p archgate-sim --bin archgate-sim -- --seeds 10000
