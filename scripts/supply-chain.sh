#!/usr/bin/env bash
# The supply-chain gate: cargo-deny (advisories, licences, bans, sources; deny.toml) against the
# offline RustSec snapshot in ../shared/advisory-db, with fetching disabled (--offline). cargo-deny reads its
# databases from git checkouts, so the snapshot is copied into a throw-away repository first
# (committed with the snapshot's own date, so the staleness limit in deny.toml measures the
# snapshot's age, not today's copy). Installs cargo-deny (from crates.io, pinned) if absent.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${COHORT_CACHE:-$HOME/.cache/cohort}"
DENY="$CACHE/tools/bin/cargo-deny"
SNAPSHOT="${COHORT_ADVISORY_SNAPSHOT:-../shared/advisory-db}"
export COHORT_ADVISORY_DBS="$CACHE/advisory-dbs"

if [ ! -d "$SNAPSHOT/crates" ]; then
  echo "supply-chain: no RustSec snapshot at $SNAPSHOT (set COHORT_ADVISORY_SNAPSHOT)" >&2
  exit 1
fi
DENY_VERSION=0.20.2
if ! "$DENY" --version 2>/dev/null | grep -qF "$DENY_VERSION"; then
  echo "supply-chain: installing cargo-deny $DENY_VERSION into $CACHE/tools"
  # --debug: cargo-deny's release profile (fat LTO, one codegen unit) took about 10 minutes of a
  # cold CI run's 2 cores; the unoptimised build takes under a minute and checks this tree in
  # seconds.
  cargo install --quiet --locked --debug cargo-deny --version "$DENY_VERSION" --root "$CACHE/tools"
fi

# cargo-deny names the checkout after the database URL in deny.toml:
# "<last path segment>-<xxhash64 of the lower-cased URL>".
DB="$COHORT_ADVISORY_DBS/advisory-db-3157b0e258782691"
stamp="$(sha256sum <"$SNAPSHOT/SNAPSHOT.md" | cut -c1-16) $(find "$SNAPSHOT/crates" -type f | wc -l)"
if [ ! -f "$DB/.cohort-stamp" ] || [ "$(cat "$DB/.cohort-stamp")" != "$stamp" ]; then
  rm -rf "$DB"
  mkdir -p "$DB"
  cp -r "$SNAPSHOT"/. "$DB"/
  chmod -R u+w "$DB"
  date=$(grep -oE '[0-9]{4}-[0-9]{2}-[0-9]{2}' "$SNAPSHOT/SNAPSHOT.md" | head -n 1)
  (
    cd "$DB"
    git init -q -b main
    git add -A
    GIT_AUTHOR_DATE="${date}T00:00:00Z" GIT_COMMITTER_DATE="${date}T00:00:00Z" \
      git -c user.name=cohort -c user.email=cohort@localhost commit -q -m "RustSec snapshot of $date"
  )
  echo "$stamp" >"$DB/.cohort-stamp"
fi

# cargo-deny --offline reads the crates from cargo's registry cache: on a fresh machine nothing
# is there yet, so the locked graph is fetched first (a no-op when it is).
cargo fetch --locked
"$DENY" --offline --locked check --show-stats advisories licenses bans sources

# The control: without the written exceptions the same snapshot must refuse the tree, naming
# the cggmp21 advisory, so a gate that read no advisories could not pass.
control=$(mktemp)
trap 'rm -f "$control"' EXIT
python3 - "$control" <<'PY'
import re, sys
text = open("deny.toml").read()
text = re.sub(r"(?ms)^ignore = \[.*?^\]\n", "ignore = []\n", text)
open(sys.argv[1], "w").write(text)
PY
if out=$("$DENY" --offline --locked --config "$control" check advisories 2>&1); then
  echo "supply-chain: control failed: the tree passes with no exceptions" >&2
  exit 1
fi
if ! grep -q "RUSTSEC-2025-0127" <<<"$out"; then
  echo "supply-chain: control failed: cggmp21's RUSTSEC-2025-0127 was not reported" >&2
  exit 1
fi
echo "supply-chain: control ok (without the exceptions, RUSTSEC-2025-0127 and others are reported)"
