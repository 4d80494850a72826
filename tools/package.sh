#!/usr/bin/env bash
# The deployable Lambda packages: every function of template.yaml built once, by one
# `cargo lambda build --release --output-format zip` for one architecture, into
# dist/lambda/<function>/bootstrap.zip — the CodeUri of each function in template.yaml, so
# `sam build` only points the built template at them. Prints each package's size.
# `./dev package` runs it after installing the pinned cargo-lambda and zig into ./.venv.
#
#   tools/package.sh            arm64 (Graviton), the template's default Architecture
#   tools/package.sh --x86_64   x86_64; deploy it with the parameter Architecture=x86_64
#
# The packages land in dist/ whatever CARGO_TARGET_DIR is; dist/lambda/ARCHITECTURE names
# the architecture they were built for. A missing Rust target is installed with rustup.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each is the one [[bin]] of functions/<function>, the package archgate-<function>
# (tests/package.rs holds this list, the template and the manifests in agreement).
FUNCTIONS=(start-builds build-completed scan-gate retention-cleanup reconciler)
ARCHITECTURE=arm64
OUT=dist/lambda

case "${1:-}" in
  "") ;;
  --x86_64) ARCHITECTURE=x86_64 ;;
  *)
    echo "usage: tools/package.sh [--x86_64]" >&2
    exit 2
    ;;
esac
case "$ARCHITECTURE" in
  arm64) triple=aarch64-unknown-linux-gnu flag=--arm64 machine=183 ;; # ELF e_machine EM_AARCH64
  x86_64) triple=x86_64-unknown-linux-gnu flag=--x86-64 machine=62 ;; # EM_X86_64
esac

if ! rustup target list --installed | grep -qx "$triple"; then
  echo "package: installing the Rust target $triple" >&2
  rustup target add "$triple"
fi

export PATH="$PWD/.venv/bin:$PATH" # cargo-lambda, and zig through `python -m ziglang`
source tools/lambda-codegen.sh
packages=()
for f in "${FUNCTIONS[@]}"; do packages+=(-p "archgate-$f"); done

rm -rf "$OUT"
mkdir -p "$OUT"
echo "package: cargo lambda build --release --locked $flag --output-format zip (${FUNCTIONS[*]})" >&2
started=$SECONDS
cargo lambda build --release --locked "$flag" --output-format zip \
  --lambda-dir "$PWD/$OUT" "${packages[@]}"
elapsed=$((SECONDS - started))
echo "$ARCHITECTURE" >"$OUT/ARCHITECTURE"

# Each zip holds one executable `bootstrap` for the architecture asked for.
python3 - "$ARCHITECTURE" "$machine" "$OUT" "${FUNCTIONS[@]}" <<'PY'
import os, struct, sys, zipfile

architecture, machine, out, functions = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
mib = 1024 * 1024
print(f"\n{architecture} packages in {out}/<function>/bootstrap.zip:\n")
print(f"{'function':<18} {'bootstrap':>20} {'zip':>20}")
problems = []
for function in functions:
    path = os.path.join(out, function, "bootstrap.zip")
    if not os.path.isfile(path):
        problems.append(f"{path} was not written")
        continue
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        if names != ["bootstrap"]:
            problems.append(f"{path} holds {names}, not just bootstrap")
            continue
        info = archive.getinfo("bootstrap")
        header = archive.open(info).read(20)
    mode = info.external_attr >> 16
    if header[:4] != b"\x7fELF" or struct.unpack_from("<H", header, 18)[0] != machine:
        problems.append(f"{path}: bootstrap is not an {architecture} Linux executable")
    if not mode & 0o111:
        problems.append(f"{path}: bootstrap is not executable (mode {oct(mode)})")
    size, zipped = info.file_size, os.path.getsize(path)
    print(f"{function:<18} {size / mib:>7.2f} MiB {size:>10} {zipped / mib:>7.2f} MiB {zipped:>10}")
if problems:
    sys.exit("\n".join(problems))
PY
echo
echo "package: built in $((elapsed / 60)) min $((elapsed % 60)) s; deploy with Architecture=$ARCHITECTURE (sam build, then sam deploy)"
