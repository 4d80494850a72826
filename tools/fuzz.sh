#!/usr/bin/env bash
# Fuzzes every event parser for a bounded time (default 60 s each) with cargo-fuzz on nightly,
# seeded with the samples in events/. Installs cargo-fuzz on first use.
#
#   tools/fuzz.sh             every target, 60 s each
#   FUZZ_SECONDS=600 tools/fuzz.sh scan_event
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz@0.13.2
SECONDS_EACH=${FUZZ_SECONDS:-60}
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=(s3_event codebuild_event scan_event retention_request manifest_links ledger_record)
for target in "${targets[@]}"; do
  corpus="corpus/$target"
  mkdir -p "$corpus"
  cp ../events/*.json "$corpus/" 2>/dev/null || true
  echo "fuzzing $target for ${SECONDS_EACH}s" >&2
  cargo +nightly fuzz run "$target" "$corpus" -- -max_total_time="$SECONDS_EACH" -max_len=65536
done
