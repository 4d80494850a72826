#!/usr/bin/env python3
"""Dependencies a crate declares and never names in its code.

The same check cargo-machete makes (a dependency is used when a source file of its crate
says `use dep…`, `dep::…` or `extern crate dep`), read from the sources without compiling
anything, so `./dev test` needs no tool built first. Every Cargo.toml under the directory
given (default: the current one) is checked, the fuzz targets' included; a crate may name
dependencies that are used only indirectly under
`[package.metadata.unused-deps] ignored = [...]`, with a comment saying why.

Exit 0 when every dependency is used, 1 with one line per unused dependency otherwise.
"""
import pathlib
import re
import sys
import tomllib

SKIP = {"target", ".venv", ".tools", ".git", ".archgate", "node_modules"}
TABLES = ("dependencies", "dev-dependencies", "build-dependencies")


def manifests(root: pathlib.Path):
    for path in sorted(root.rglob("Cargo.toml")):
        if not SKIP.intersection(path.relative_to(root).parts):
            yield path


def declared(manifest: dict):
    tables = [manifest.get(t, {}) for t in TABLES]
    for target in manifest.get("target", {}).values():
        tables += [target.get(t, {}) for t in TABLES]
    for table in tables:
        yield from table


def sources(crate: pathlib.Path):
    """The crate's Rust files, without those of crates nested in it."""
    nested = {
        p.parent
        for p in crate.rglob("Cargo.toml")
        if p.parent != crate and not SKIP.intersection(p.relative_to(crate).parts)
    }
    for path in crate.rglob("*.rs"):
        rel = path.relative_to(crate)
        if SKIP.intersection(rel.parts) or any(n in path.parents for n in nested):
            continue
        yield path


def used(name: str, text: str) -> bool:
    code = re.escape(name.replace("-", "_"))
    pattern = (
        rf"use (::)?(?i:{code})(::|;| as)"
        rf"|(?:[^:\w]|^|\W::)(?i:{code})::"
        rf"|extern crate (?i:{code})( |;)"
    )
    return re.search(pattern, text, re.MULTILINE) is not None


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    unused = []
    for path in manifests(root):
        manifest = tomllib.loads(path.read_text())
        if "package" not in manifest:
            continue  # a workspace root without a package of its own
        ignored = set(
            manifest["package"].get("metadata", {}).get("unused-deps", {}).get("ignored", [])
        )
        text = "\n".join(p.read_text(errors="replace") for p in sources(path.parent))
        for name in declared(manifest):
            if name not in ignored and not used(name, text):
                unused.append(f"{path.relative_to(root)}: {name}")
    for line in unused:
        print(f"unused dependency: {line}")
    if not unused:
        print(f"unused-deps: every declared dependency is used")
    return 1 if unused else 0


if __name__ == "__main__":
    sys.exit(main())
