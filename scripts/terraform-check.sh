#!/usr/bin/env bash
# Checks terraform/: formatting, `terraform validate` of every module and example and their
# `terraform test` suites (offline, against the provider mirror in /opt/tf-plugins), the units
# and scripts the modules install (scripts/check-units.sh: systemd-analyze verify), and checkov
# with zero failed checks. Every checkov skip
# lives inline in the .tf files (`# checkov:skip=ID: reason`), never on this command line.
#
# Writes nothing in the clone: Terraform validates a copy in a temporary directory, each
# directory with its own throwaway TF_DATA_DIR (so no .terraform/ or .terraform.lock.hcl appears
# here), and checkov is installed once into a virtualenv under ${COHORT_CACHE:-~/.cache/cohort}.
set -euo pipefail
cd "$(dirname "$0")/.."

CHECKOV_VERSION="3.3.30"
CACHE="${COHORT_CACHE:-$HOME/.cache/cohort}"
VENV="$CACHE/checkov-venv"
MIRROR="/opt/tf-plugins"
TF_ROOT="terraform"

started=$SECONDS
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step() { printf '\n==> %s\n' "$*"; }

# The directories Terraform runs in: every module and every example.
tf_dirs=()
for d in "$TF_ROOT"/modules/*/ "$TF_ROOT"/examples/*/; do
  [ -d "$d" ] && tf_dirs+=("${d%/}")
done
if [ ${#tf_dirs[@]} -eq 0 ]; then
  echo "no Terraform directories under $TF_ROOT/modules or $TF_ROOT/examples" >&2
  exit 1
fi

# --- terraform fmt and validate ------------------------------------------------------------------

validated="skipped"
have_terraform=""
command -v terraform >/dev/null 2>&1 && have_terraform=1

if [ -n "$have_terraform" ]; then
  # Providers come from the local mirror only; this also keeps a user's ~/.terraformrc out.
  cat >"$work/terraformrc" <<TFRC
provider_installation {
  filesystem_mirror {
    path    = "$MIRROR"
    include = ["registry.terraform.io/hashicorp/*"]
  }
}
TFRC
  export TF_CLI_CONFIG_FILE="$work/terraformrc"
  export TF_IN_AUTOMATION=1
  export CHECKPOINT_DISABLE=1

  step "terraform fmt -check -recursive $TF_ROOT/ ($(terraform version | head -n 1))"
  if ! terraform fmt -check -recursive -diff "$TF_ROOT/"; then
    echo "terraform fmt: run 'terraform fmt -recursive $TF_ROOT/'" >&2
    exit 1
  fi
else
  echo "NOTICE: terraform fmt skipped: terraform absent"
fi

if [ -n "$have_terraform" ] && [ -d "$MIRROR" ]; then
  tested=0
  cp -R "$TF_ROOT" "$work/src"
  for d in "${tf_dirs[@]}"; do
    step "terraform init -backend=false && terraform validate: $d"
    rel="${d#"$TF_ROOT"/}"
    export TF_DATA_DIR="$work/data/${rel//\//_}"
    if ! terraform -chdir="$work/src/$rel" init -backend=false -input=false -no-color \
      >"$work/init.log" 2>&1; then
      cat "$work/init.log" >&2
      echo "terraform init failed in $d" >&2
      exit 1
    fi
    terraform -chdir="$work/src/$rel" validate -no-color
    # Directories with tests (mocked AWS provider: nothing reaches AWS) run them too.
    if compgen -G "$work/src/$rel/tests/*.tftest.hcl" >/dev/null; then
      terraform -chdir="$work/src/$rel" test -no-color
      tested=$((tested + 1))
    fi
  done
  unset TF_DATA_DIR
  validated="${#tf_dirs[@]} directories valid, tests passed in $tested"
else
  echo
  echo "NOTICE: terraform validate skipped: terraform or $MIRROR absent (terraform test too)"
  echo
fi

# --- the instances' systemd units and scripts ----------------------------------------------------

step "systemd units and scripts (scripts/check-units.sh)"
./scripts/check-units.sh

# --- checkov -------------------------------------------------------------------------------------

step "checkov $CHECKOV_VERSION -d $TF_ROOT"
if [ ! -x "$VENV/bin/checkov" ] || [ "$("$VENV/bin/checkov" --version 2>/dev/null)" != "$CHECKOV_VERSION" ]; then
  echo "installing checkov $CHECKOV_VERSION into $VENV"
  rm -rf "$VENV"
  mkdir -p "$CACHE"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
fi

# Offline: no platform API key, no policy or guideline download (--skip-download,
# BC_SKIP_MAPPING), no PyPI update check, no package (SCA) scan.
unset BC_API_KEY PRISMA_API_URL
export BC_SKIP_MAPPING=TRUE
export CKV_SKIP_PACKAGE_UPDATE_CHECK=true
export CHECKOV_RUN_SCA_PACKAGE_SCAN=false

set +e
"$VENV/bin/checkov" -d "$TF_ROOT" --framework terraform --quiet --compact --skip-download \
  --output cli --output json --output-file-path "console,$work/checkov.json"
status=$?
set -e

# The counts, from checkov's JSON report (one report, or a list of them). A file checkov cannot
# parse is not checked at all and would otherwise pass unnoticed: parsing errors fail too.
read -r passed failed skipped parse_errors < <("$VENV/bin/python" - "$work/checkov.json" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
reports = data if isinstance(data, list) else [data]
keys = ("passed", "failed", "skipped", "parsing_errors")
totals = [sum(r.get("summary", {}).get(k, 0) for r in reports) for k in keys]
print(*totals)
PY
)

echo
echo "terraform-check: terraform validate: $validated"
echo "terraform-check: checkov $CHECKOV_VERSION: $passed passed, $failed failed, $skipped skipped, $parse_errors parsing errors"
echo "terraform-check: $((SECONDS - started)) s"
if [ "$failed" -ne 0 ] || [ "$parse_errors" -ne 0 ] || [ "$status" -ne 0 ]; then
  echo "terraform-check: FAILED (checkov exit status $status, $parse_errors parsing errors)" >&2
  exit 1
fi
echo "terraform-check: OK"
