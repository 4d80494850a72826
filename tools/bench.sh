#!/usr/bin/env bash
# Measurements reported in the README: the pipeline benchmark (calls and time per event),
# the retention planner and its calls, retention on the latency model of ECR, the Lambda
# packages (x86_64: size, start, memory; where their bytes are; arm64: size), the
# simulation's throughput.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo bench --locked -p archgate-cli --bench pipeline
cargo bench --locked -p archgate-benches --bench planner
cargo bench --locked -p archgate-benches --bench retention_calls
cargo bench --locked -p archgate-benches --bench retention_model
cargo bench --locked -p archgate-benches --bench release_planner
cargo bench --locked -p archgate-cli --bench retention_emulator
cargo bench --locked -p archgate-cli --bench retention_repositories
tools/lambda-budgets.sh
tools/bloat.sh

echo
echo "## The deployable packages, arm64 (./dev package)"
./dev package

echo
echo "## Simulation (the same build ./dev test runs: dev profile, the simulated code optimised)"
echo
cargo run --quiet --locked -p archgate-sim --bin archgate-sim -- --seeds 10000
