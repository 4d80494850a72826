# Sourced by every script that builds the Lambda bootstraps (tools/package.sh,
# tools/lambda-budgets.sh, tools/bloat.sh), so the packages, their measured starts and their
# size breakdown are the same code: position-dependent executables, which apply no
# relocations at start (docs/design.md, "Position-dependent bootstraps"). Only for builds
# with an explicit --target: without one these variables would reach build scripts and
# procedural macros too.
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C relocation-model=static"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C relocation-model=static"
