#!/usr/bin/env bash
# Checks the systemd units and scripts the Terraform modules install on the instances
# (terraform/modules/{node,coordinator,instance_group}/files): each template rendered by
# Terraform's own templatefile() with values of the shape the modules pass, then
#
# * every unit through `systemd-analyze verify` in a scratch root (this machine's systemd units,
#   the rendered ones, stubs for the executables and the package-provided
#   nitro-enclaves-allocator.service); any line it prints (an unknown key, a bad value, a
#   missing executable or unit) fails, not only its exit status;
# * every shell script through `bash -n`;
# * tmpfiles.d/cohort.conf through `systemd-tmpfiles --create` in the scratch root, which must
#   make /var/log/cohort and /var/lib/cohort owned by the service user;
# * the ordering the units rely on: each unit that appends to /var/log/cohort starts after
#   systemd-tmpfiles-setup.service, every Restart=always unit has no start limit, and the proxy
#   never syncs blobs downward with `aws s3 sync`; the upward sync sends a checksum (the blob
#   bucket is under Object Lock); the proxy listens for the enclave's logs on the vsock port
#   the image sends them to.
#
# Called by scripts/terraform-check.sh. Needs terraform (to render) and systemd-analyze; without
# terraform it prints a notice and checks nothing (as terraform-check does), without
# systemd-analyze it fails.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v terraform >/dev/null 2>&1; then
  echo "NOTICE: unit checks skipped: terraform absent (the templates are rendered with it)"
  exit 0
fi
for tool in systemd-analyze systemd-tmpfiles; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "check-units: $tool is missing (Debian package systemd; scripts/setup.sh installs it)" >&2
    exit 1
  fi
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
modules="$PWD/terraform/modules"

# --- render ---------------------------------------------------------------------------------
mkdir -p "$work/render"
cat >"$work/render/main.tf" <<EOF
locals {
  measurements_paths = ["/etc/cohort/measurements.json", "/etc/cohort/measurements-1.json"]
  # modules/node, local.template_vars
  node = {
    node               = 1
    region             = "eu-west-1"
    cpu_count          = 2
    memory_mib         = 4096
    proxy_port         = 7070
    blob_bucket        = "cohort-111122223333-eu-west-1-sealed-blobs"
    kms_key_arn        = "arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-0000-0000-000000000000"
    measurements_paths = local.measurements_paths
  }
  # modules/coordinator, local.template_vars
  coordinator = {
    region             = "eu-west-1"
    coordinator_port   = 8080
    proxy_urls         = ["http://10.40.16.10:7070", "http://10.40.17.10:7070"]
    measurements_paths = local.measurements_paths
    pool_level         = 8
    secret_arn         = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:rds!db-mock"
    db_host            = "cohort.mock.eu-west-1.rds.amazonaws.com"
    db_port            = 5432
    db_name            = "cohort"
    db_ca_file         = "/etc/cohort/rds-ca.pem"
    admin_key_paths    = ["/etc/cohort/admin-keys/alice.json"]
    db_app_role        = "cohort_app"
  }
  n = "$modules/node/files"
  c = "$modules/coordinator/files"
  g = "$modules/instance_group/files"
}

output "files" {
  value = {
    "etc/systemd/system/cohort-enclave.service"          = templatefile("\${local.n}/cohort-enclave.service.tftpl", local.node)
    "etc/systemd/system/cohort-parent-proxy.service"     = templatefile("\${local.n}/cohort-parent-proxy.service.tftpl", local.node)
    "etc/systemd/system/cohort-blob-sync.service"        = templatefile("\${local.n}/cohort-blob-sync.service.tftpl", local.node)
    "etc/systemd/system/cohort-blob-sync.path"           = file("\${local.n}/cohort-blob-sync.path")
    "etc/systemd/system/cohort-blob-sync.timer"          = file("\${local.n}/cohort-blob-sync.timer")
    "usr/local/libexec/cohort/run-enclave"               = templatefile("\${local.n}/run-enclave.sh.tftpl", local.node)
    "usr/local/libexec/cohort/fetch-blobs"               = templatefile("\${local.n}/fetch-blobs.sh.tftpl", local.node)
    "usr/local/libexec/cohort/sync-blobs"                = templatefile("\${local.n}/sync-blobs.sh.tftpl", local.node)
    "etc/systemd/system/cohort-coordinator.service"      = templatefile("\${local.c}/cohort-coordinator.service.tftpl", local.coordinator)
    "etc/systemd/system/cohort-db-env.service"           = file("\${local.c}/cohort-db-env.service")
    "etc/systemd/system/cohort-db-grant.service"         = templatefile("\${local.c}/cohort-db-grant.service.tftpl", local.coordinator)
    "usr/local/libexec/cohort/db-env"                    = templatefile("\${local.c}/db-env.sh.tftpl", local.coordinator)
    "etc/tmpfiles.d/cohort.conf"                         = file("\${local.g}/tmpfiles.conf")
    "etc/systemd/system/cohort-journal.service"          = file("\${local.g}/cohort-journal.service")
  }
}
EOF
: >"$work/terraformrc"
export TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1 TF_DATA_DIR="$work/tfdata" TF_CLI_CONFIG_FILE="$work/terraformrc"
terraform -chdir="$work/render" init -backend=false -input=false -no-color >/dev/null
terraform -chdir="$work/render" apply -auto-approve -input=false -no-color \
  -state="$work/render.tfstate" >/dev/null
terraform -chdir="$work/render" output -state="$work/render.tfstate" -json files >"$work/files.json"

root="$work/root"
mkdir -p "$root/usr/lib/systemd" "$root/etc"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
python3 - "$work/files.json" "$root" <<'PY'
import json, os, sys
files = json.load(open(sys.argv[1]))
for rel, content in files.items():
    path = os.path.join(sys.argv[2], rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(content)
    os.chmod(path, 0o755 if "/libexec/" in rel else 0o644)
print(f"check-units: {len(files)} files rendered")
PY

# Executables the units name that the instances get from packages or the release, as stubs.
for exe in usr/bin/aws usr/bin/nitro-cli usr/bin/jq usr/bin/journalctl usr/local/bin/cohort-parent-proxy \
  usr/local/bin/cohort-coordinator; do
  mkdir -p "$root/$(dirname "$exe")"
  printf '#!/bin/sh\n' >"$root/$exe"
  chmod 0755 "$root/$exe"
done
# aws-nitro-enclaves-cli's unit (cohort-enclave.service requires it).
printf '[Unit]\nDescription=stub of aws-nitro-enclaves-cli\n[Service]\nType=oneshot\nExecStart=/usr/bin/nitro-cli --version\n' \
  >"$root/usr/lib/systemd/system/nitro-enclaves-allocator.service"

failed=0
fail() {
  echo "check-units: $*" >&2
  failed=1
}

# --- systemd-analyze verify -------------------------------------------------------------------
for unit in "$root"/etc/systemd/system/*; do
  name=$(basename "$unit")
  if ! out=$(systemd-analyze verify --root="$root" "$unit" 2>&1) || [ -n "$out" ]; then
    fail "$name does not verify:"
    printf '%s\n' "$out" >&2
  else
    echo "check-units: $name verifies"
  fi
done

# --- scripts ----------------------------------------------------------------------------------
for script in "$root"/usr/local/libexec/cohort/*; do
  if ! bash -n "$script"; then
    fail "$(basename "$script") is not valid bash"
  fi
done

# --- tmpfiles.d -------------------------------------------------------------------------------
echo "cohort:x:990:990::/nonexistent:/sbin/nologin" >"$root/etc/passwd"
echo "cohort:x:990:" >"$root/etc/group"
if ! out=$(systemd-tmpfiles --root="$root" --create "$root/etc/tmpfiles.d/cohort.conf" 2>&1) || [ -n "$out" ]; then
  fail "tmpfiles.d/cohort.conf: $out"
fi
for d in var/log/cohort var/lib/cohort; do
  if [ ! -d "$root/$d" ] || [ "$(stat -c '%u %a' "$root/$d")" != "990 750" ]; then
    fail "tmpfiles.d/cohort.conf did not make /$d owned by the service user, mode 0750"
  fi
done
# The journal's copy is out of the service user's reach.
if [ ! -d "$root/var/log/cohort-journal" ] || [ "$(stat -c '%u %a' "$root/var/log/cohort-journal")" != "0 750" ]; then
  fail "tmpfiles.d/cohort.conf did not make /var/log/cohort-journal owned by root, mode 0750"
fi

# --- what the units rely on -----------------------------------------------------------------
for unit in "$root"/etc/systemd/system/*.service; do
  name=$(basename "$unit")
  if grep -q '^StandardOutput=append:/var/log/cohort' "$unit" \
    && ! grep -q '^After=.*systemd-tmpfiles-setup.service' "$unit"; then
    fail "$name appends to /var/log/cohort but is not ordered after systemd-tmpfiles-setup.service"
  fi
  if grep -q '^Restart=always' "$unit" && ! grep -q '^StartLimitIntervalSec=0' "$unit"; then
    fail "$name restarts always but keeps a start limit (it would stay failed after 5 quick failures)"
  fi
done
if grep -q 'aws s3 sync s3://' "$root/etc/systemd/system/cohort-parent-proxy.service"; then
  fail "the proxy syncs blobs downward with aws s3 sync (it would replace a newer local blob)"
fi
# The blob bucket is under Object Lock with a default retention: S3 refuses a write without a
# checksum (Content-MD5 or x-amz-checksum-*), and the unit would retry it forever.
if ! grep -q -- '--checksum-algorithm SHA256' "$root/usr/local/libexec/cohort/sync-blobs"; then
  fail "sync-blobs uploads without a checksum (S3 refuses it under Object Lock)"
fi
# The manifest the sync writes is the one the proxy reads.
if ! grep -q '^manifest=/var/lib/cohort/backed-up.json$' "$root/usr/local/libexec/cohort/sync-blobs" \
  || ! grep -q -- '--backup-manifest /var/lib/cohort/backed-up.json ' "$root/etc/systemd/system/cohort-parent-proxy.service"; then
  fail "the proxy's --backup-manifest is not the file sync-blobs writes"
fi

# The enclave image sends its logs to the vsock port the proxy listens on (eif-build/build.sh
# bakes --log-to into the image; the proxy unit passes --enclave-log-listen).
log_port=$(grep -o -- '--arg=--log-to --arg=vsock:3:[0-9]*' eif-build/build.sh | sed 's/.*://')
if [ -z "$log_port" ] \
  || ! grep -q -- "--enclave-log-listen vsock:any:$log_port " "$root/etc/systemd/system/cohort-parent-proxy.service"; then
  fail "the proxy does not listen for the enclave's logs on the port the image sends them to (${log_port:-none})"
fi

if [ "$failed" -ne 0 ]; then
  echo "check-units: FAILED" >&2
  exit 1
fi
echo "check-units: OK"
