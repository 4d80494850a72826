#!/usr/bin/env bash
# Where each function's bytes are: `cargo bloat --crates` of every function's release binary
# (x86_64, the release profile but not stripped, so symbols can be attributed; the same code
# the packages hold). cargo-bloat is installed once, pinned, into target/tools.
#
#   tools/bloat.sh [ROWS]   the ROWS largest crates of each function (default 12)
set -euo pipefail
cd "$(dirname "$0")/.."

FUNCTIONS=(start-builds build-completed scan-gate retention-cleanup reconciler)
ROWS=${1:-12}
BLOAT_VERSION=0.12.1
TOOLS=target/tools
if [[ "$("$TOOLS/bin/cargo-bloat" --version 2>/dev/null)" != *"$BLOAT_VERSION"* ]]; then
  echo "bloat: installing cargo-bloat $BLOAT_VERSION into $TOOLS" >&2
  cargo install --quiet --locked --root "$TOOLS" --version "$BLOAT_VERSION" cargo-bloat
fi
export PATH="$PWD/$TOOLS/bin:$PATH" CARGO_PROFILE_RELEASE_STRIP=false CARGO_TARGET_DIR=target/bloat
source tools/lambda-codegen.sh
TARGET=x86_64-unknown-linux-gnu

packages=()
for f in "${FUNCTIONS[@]}"; do packages+=(-p "archgate-$f"); done
cargo build --release --locked --quiet --target "$TARGET" "${packages[@]}"

echo "## Where the bytes are (\`cargo bloat --release --crates\`, x86_64, unstripped release build)"
for f in "${FUNCTIONS[@]}"; do
  echo
  echo "### $f"
  echo
  echo '```'
  cargo bloat --release --locked --target "$TARGET" -p "archgate-$f" --bin "$f" --crates -n "$ROWS" 2>/dev/null
  echo '```'
done
