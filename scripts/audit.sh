#!/usr/bin/env bash
# cargo audit of Cargo.lock and fuzz/Cargo.lock against the RustSec
# advisory database vendored in security/ (this network cannot reach
# GitHub, where the live database is). The snapshot is dated in its file
# name: advisories published after it are NOT checked — replace the tarball
# (git archive --prefix=advisory-db/ of github.com/RustSec/advisory-db) to
# move it forward. cargo-audit itself is installed once into
# /var/tmp/talos-tools (pinned version).
#
#   scripts/audit.sh
#
# Ignored advisories, each with its reason in docs/security.md (F4):
#   RUSTSEC-2023-0071  rsa: Marvin timing side channel; no fixed release.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=${TALOS_TOOLS_DIR:-/var/tmp/talos-tools}
VERSION=${CARGO_AUDIT_VERSION:-0.22.2}
AUDIT=$TOOLS/bin/cargo-audit
if ! "$AUDIT" --version 2>/dev/null | grep -qF "$VERSION"; then
  echo "installing cargo-audit $VERSION into $TOOLS" >&2
  cargo install --locked --quiet --root "$TOOLS" cargo-audit --version "$VERSION"
fi
SNAPSHOT=$(ls security/advisory-db-*.tar.gz | tail -n 1)
DB=$(mktemp -d)
trap 'rm -rf "$DB"' EXIT
tar -xzf "$SNAPSHOT" -C "$DB"
echo "advisory database: $SNAPSHOT" >&2
for lock in Cargo.lock fuzz/Cargo.lock; do
  echo "== $lock" >&2
  "$AUDIT" audit --db "$DB/advisory-db" --no-fetch --stale \
    --ignore RUSTSEC-2023-0071 --deny warnings --file "$lock"
done
