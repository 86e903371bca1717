#!/usr/bin/env bash
# Boot proof: the systemd units the Terraform modules install on the instances
# (terraform/modules/{node,coordinator,instance_group}/files) start on a fresh machine under a
# real systemd. By hand, as root on Debian 12 with Debian's mirrors reachable; not in CI.
#
#   scripts/boot-proof.sh [--build-only]     BOOT_PROOF_REF=HEAD: a commit's units, not the work tree's
#
# 1. renders the templates with templatefile() and check-units.sh's values (its main.tf, read
#    out of it at run time so the two never drift apart);
# 2. debootstraps Debian bookworm (systemd 252, as Amazon Linux 2023), with the modules of the
#    kernel it boots and stubs for what only AWS has (below);
# 3. writes the rendered files where the user data writes them (same modes), does what its runcmd
#    does (useradd cohort, the install commands, `systemctl enable` of the units its start
#    commands name, without --now), but NOT `systemd-tmpfiles --create`: the boot must start the
#    units and make /var/log/cohort and /var/lib/cohort, as on every boot after the first;
# 4. boots it with qemu-system-x86_64 (TCG; BOOT_PROOF_ACCEL=kvm is faster), root on an emulated
#    NVMe disk (as on Nitro; the cloud kernel has NVMe built in), no network card;
# 5. a unit in the guest prints the units' states, directories and logs to the serial console
#    ($BOOT_PROOF_LOG) and powers off; this script then fails on a failed or unstarted cohort
#    unit, an ordering cycle ("verdict") or missing directories.
# Both roles share one guest (and nothing but the user). Scratch data in $BOOT_PROOF_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${BOOT_PROOF_DIR:-/tmp/boot-proof}
log=${BOOT_PROOF_LOG:-/tmp/boot-proof.log}
target=${CARGO_TARGET_DIR:-$HOME/.cache/cohort/target}
kernel_dir=${COHORT_CACHE:-$HOME/.cache/cohort}/kernel
started=$(date +%s)
say() { echo "boot-proof: $*"; }

[ "$(id -u)" -eq 0 ] || { say "run as root (debootstrap, chroot)" >&2; exit 1; }
command -v terraform >/dev/null || { say "terraform is missing (scripts/setup.sh)" >&2; exit 1; }
need=$( (command -v debootstrap >/dev/null || echo debootstrap; command -v qemu-system-x86_64 >/dev/null || echo qemu-system-x86) | xargs)
[ -z "$need" ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need; }
mkdir -p "$work"
if [ -n "${BOOT_PROOF_REF:-}" ]; then # render that commit's files
  rm -rf "$work/src" && mkdir -p "$work/src"
  git archive "$BOOT_PROOF_REF" scripts/check-units.sh terraform/modules | tar -x -C "$work/src"
  say "units of $(git rev-parse --short "$BOOT_PROOF_REF") ($BOOT_PROOF_REF)"
  cd "$work/src"
else
  say "units of the work tree ($(git rev-parse --short HEAD)$(git diff --quiet HEAD -- terraform || echo ', modified'))"
fi

# --- 1. render --------------------------------------------------------------------------------
rm -rf "$work/render" && mkdir -p "$work/render"
sed -n '/^cat >"\$work\/render\/main.tf" <<EOF$/,/^EOF$/p' scripts/check-units.sh | sed '1d;$d' \
  | sed "s|\$modules|$PWD/terraform/modules|g; s|\\\\\${|\${|g" >"$work/render/main.tf"
grep -q 'cohort-enclave.service.tftpl' "$work/render/main.tf" || { say "no main.tf in check-units.sh" >&2; exit 1; }
cat >>"$work/render/main.tf" <<'EOF'
output "more" {
  value = {
    "etc/cohort/allocator.yaml" = templatefile("${local.n}/allocator.yaml.tftpl", local.node)
    "etc/logrotate.d/cohort"    = file("${local.g}/logrotate.conf")
  }
}
EOF
: >"$work/terraformrc"
export TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1 TF_DATA_DIR="$work/tfdata" TF_CLI_CONFIG_FILE="$work/terraformrc"
terraform -chdir="$work/render" init -backend=false -input=false -no-color >/dev/null
terraform -chdir="$work/render" apply -auto-approve -input=false -no-color -state="$work/render.tfstate" >/dev/null
terraform -chdir="$work/render" output -state="$work/render.tfstate" -json >"$work/outputs.json"

# --- 2. the system (jq, logrotate: the user data's packages; as in Amazon Linux's AMI, openssl
# for sync-blobs and ca-certificates, without which the proxy refuses to start: no_ca_certificates) -
pkgs=systemd,systemd-sysv,udev,kmod,jq,logrotate,openssl,ca-certificates
if [ "$(cat "$work/base/.complete" 2>/dev/null)" != "$pkgs" ]; then
  rm -rf "$work/base"
  say "debootstrap bookworm into $work/base (a few minutes)"
  debootstrap --variant=minbase --include="$pkgs" bookworm "$work/base" "${BOOT_PROOF_MIRROR:-http://deb.debian.org/debian}" \
    >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log"; exit 1; }
  echo "$pkgs" >"$work/base/.complete"
fi
root=$work/root
rm -rf "$root" "$work/kernel/x" && cp -a "$work/base" "$root" && rm "$root/.complete"
# The kernel setup.sh fetched (the package it names), its modules in the guest; when the mirror
# no longer has that version, the current linux-image-cloud-amd64, booted from its own vmlinuz.
mkdir -p "$work/kernel"
kpkg=$(cat "$kernel_dir/package" 2>/dev/null || true)
if [ -z "$kpkg" ] || ! { ls "$work/kernel/${kpkg}"_*.deb || (cd "$work/kernel" && apt-get download -qq "$kpkg"); } >/dev/null 2>&1; then
  apt-get update -qq
  kpkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
  (cd "$work/kernel" && apt-get download -qq "$kpkg")
fi
dpkg-deb -x "$(ls -t "$work/kernel/${kpkg}"_*.deb | head -1)" "$work/kernel/x"
kver=$(ls "$work/kernel/x/lib/modules")
cp -a "$work/kernel/x/lib/modules" "$root/lib/" && chroot "$root" depmod "$kver"
kernel=$kernel_dir/vmlinuz
[ "$(cat "$kernel_dir/package" 2>/dev/null)" = "$kpkg" ] || kernel=$work/kernel/x/boot/vmlinuz-$kver
say "kernel $kernel ($kpkg)"

# --- 3. what the user data writes and runs ------------------------------------------------------
python3 - "$work/outputs.json" "$root" <<'PY'
import json, os, sys
out = json.load(open(sys.argv[1]))
files = {**out["files"]["value"], **out["more"]["value"]}
for rel, content in files.items():  # with the modes of write_files: db-env 0700, scripts 0755
    path = os.path.join(sys.argv[2], rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "w").write(content)
    os.chmod(path, 0o700 if rel.endswith("/db-env") else 0o755 if "/libexec/" in rel else 0o644)
print(f"boot-proof: {len(files)} rendered files installed")
PY
# Made up: the measurements (instance_group writes the measurements module's files), a bootstrap
# admin's public half, the RDS CA bundle (the install commands download it from S3).
install -m 0644 terraform/modules/measurements/tests/signed.json "$root/etc/cohort/measurements.json"
install -m 0644 terraform/modules/measurements/tests/top-level.json "$root/etc/cohort/measurements-1.json"
openssl genpkey -algorithm ed25519 -out "$work/admin.pem" 2>/dev/null
printf '{"credential":"alice","public_key":"%s"}\n' \
  "$(openssl pkey -in "$work/admin.pem" -pubout -outform DER | tail -c 32 | od -An -tx1 | tr -d ' \n')" \
  | install -D -m 0644 /dev/stdin "$root/etc/cohort/admin-keys/alice.json"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=boot-proof-rds-ca \
  -days 2 -keyout /dev/null -out "$root/etc/cohort/rds-ca.pem" 2>/dev/null && chmod 0644 "$root/etc/cohort/rds-ca.pem"

# Stubs. Each logs its arguments to the journal (logger; not stderr, which run-enclave parses
# with describe-enclaves' JSON) and answers as on success. aws: the AWS CLI (no AWS here);
# nitro-cli, nitro-enclaves-allocator and its unit: the package aws-nitro-enclaves-cli (they
# need /dev/nitro_enclaves, which only Nitro instances have).
stub() { install -D -m 0755 /dev/stdin "$root/$1"; }
stub usr/bin/aws <<'EOF'
#!/bin/bash
# STUB of the AWS CLI (boot-proof.sh): one blob in the bucket, every upload confirmed.
logger -t stub-aws -- "aws $*"
arg() { while [ $# -gt 1 ]; do [ "$1" = "--$KEY" ] && { echo "$2"; return; }; shift; done; }
case "$1 $2" in
  "s3api list-objects-v2") echo node-1/stub-genesis.blob ;;
  "s3api head-object") # S3's copy holds the local content
    f=/var/lib/cohort/blobs/$(KEY=key arg "$@" | sed 's|.*/||')
    [ -f "$f" ] && openssl dgst -sha256 -binary "$f" | base64 -w0 && echo ;;
  "s3 cp") case "${@: -1}" in s3://*) ;; *) echo "stub blob" >"${@: -1}" ;; esac ;;
  "rds generate-db-auth-token") echo "$(KEY=hostname arg "$@"):5432/?Action=connect&X-Amz-Signature=stub" ;;
  "secretsmanager get-secret-value") echo '{"username":"cohort","password":"stub p@ss/word"}' ;;
esac
EOF
stub usr/bin/nitro-cli <<'EOF'
#!/bin/bash
# STUB of nitro-cli (boot-proof.sh): "an enclave" is a file in /run/nitro-cli-stub.
logger -t stub-nitro-cli -- "nitro-cli $*"
case "$1" in
  run-enclave)
    [ -f "$(sed -n 's/.*--eif-path \([^ ]*\).*/\1/p' <<<"$*")" ] || { echo "no such EIF" >&2; exit 1; }
    mkdir -p /run/nitro-cli-stub && touch /run/nitro-cli-stub/16
    echo '{"EnclaveName":"cohort","EnclaveCID":16,"NumberOfCPUs":2,"MemoryMiB":4096}' ;;
  describe-enclaves) [ -f /run/nitro-cli-stub/16 ] && echo '[{"EnclaveCID":16,"State":"RUNNING"}]' || echo '[]' ;;
  terminate-enclave) rm -f /run/nitro-cli-stub/16 ;;
esac
EOF
printf '#!/bin/sh\nlogger -t stub-nitro-enclaves-allocator "would reserve: $(grep -v "^#" /etc/nitro_enclaves/allocator.yaml | xargs)"\n' \
  | stub usr/bin/nitro-enclaves-allocator
printf '[Unit]\nDescription=Nitro Enclaves Resource Allocator (boot-proof stub)\n[Service]\nType=oneshot\nRemainAfterExit=true\nExecStart=/usr/bin/nitro-enclaves-allocator\n[Install]\nWantedBy=multi-user.target\n' \
  | install -D -m 0644 /dev/stdin "$root/usr/lib/systemd/system/nitro-enclaves-allocator.service"
# The project's binaries (downloaded by the install commands): the real ones, else stubs.
real_bins=""
for bin in cohort-parent-proxy cohort-coordinator; do
  real=""; for d in debug release; do [ -x "$target/$d/$bin" ] && real=$target/$d/$bin; done
  if [ -n "$real" ]; then
    say "$bin: the real binary $real ($(date -r "$real" '+%F %T'))"
    install -m 0755 "$real" "$root/usr/local/bin/$bin" && real_bins+=" $bin"
  else
    say "$bin: NOT BUILT (no $target/{release,debug}/$bin): a STUB that logs and sleeps stands in"
    printf '#!/bin/sh\necho "STUB %s $*"\nexec sleep infinity\n' "$bin" | stub "usr/local/bin/$bin"
  fi
done
# The other install commands: the enclave image (a placeholder), the allocator's configuration.
install -D -m 0644 /dev/null "$root/opt/cohort/cohort.eif"
install -D -m 0644 "$root/etc/cohort/allocator.yaml" "$root/etc/nitro_enclaves/allocator.yaml"
chroot "$root" useradd --system --no-create-home --shell /sbin/nologin cohort
echo boot-proof >"$root/etc/hostname" && echo '/dev/nvme0n1 / ext4 defaults 0 1' >"$root/etc/fstab"
chroot "$root" systemd-machine-id-setup >/dev/null

# The units the modules' start commands enable (`systemctl enable --now ...` in their main.tf);
# every rendered cohort unit (reported); those a timer or path starts (their timers are minutes
# away: the report starts each once); those with a State/LogsDirectory (restarted by the report
# after a second `systemd-tmpfiles --create`, to show who sets the directories' modes).
enable=$(grep -ho '\["systemctl", "enable", "--now", [^]]*\]' terraform/modules/*/main.tf \
  | grep -o '"[a-z0-9@.-]*\.\(service\|path\|timer\)"' | tr -d '"' | sort -u | xargs)
units=$(printf '%s\n' $enable "$root"/etc/systemd/system/cohort-* | xargs -n1 basename | sort -u | xargs)
triggered=$(sed -n 's/^Unit=//p' "$root"/etc/systemd/system/cohort-*.{timer,path} 2>/dev/null | sort -u | xargs)
dirunits=$(grep -l '^\(State\|Logs\)Directory=' "$root"/etc/systemd/system/cohort-*.service | xargs -n1 basename | xargs)
install -D -m 0755 /dev/stdin "$root/usr/local/sbin/boot-proof-report" <<EOF
#!/bin/bash
export SYSTEMD_COLORS=0 SYSTEMD_PAGER=cat
echo "BOOT-PROOF system: \$(timeout 600 systemctl is-system-running --wait)"
sleep ${BOOT_PROOF_SETTLE:-45}
for u in $triggered; do timeout 120 systemctl start "\$u"; done
echo "=== BOOT-PROOF BEGIN"
echo "--- systemctl --failed"; systemctl --failed --all --no-legend
for u in $units; do
  echo "--- systemctl status \$u"; systemctl status -l -n 12 "\$u"
  echo "BOOT-PROOF-UNIT \$u \$(systemctl show -p ActiveState,SubState,Result,ExecMainStatus,NRestarts "\$u" | xargs)"
done
echo "--- ls -ld"; ls -ld /var/log/cohort* /var/lib/cohort* /var/lib/cohort/blobs
ls -l /var/log/cohort* /var/lib/cohort/blobs
for f in /var/log/cohort*/*; do echo "--- head \$f"; head -n 15 "\$f"; done
echo "--- ordering cycles"; journalctl -b -o cat | grep -iE 'ordering cycle|dependency on'
echo "--- journal"; journalctl -b -o short-monotonic -u 'cohort-*' -u nitro-enclaves-allocator | tail -n 100
echo "--- modes: after systemd-tmpfiles --create, then after restarting $dirunits"
systemd-tmpfiles --create /etc/tmpfiles.d/cohort.conf; ls -ld /var/log/cohort /var/lib/cohort
timeout 120 systemctl restart $dirunits; sleep 2; ls -ld /var/log/cohort /var/lib/cohort
echo "=== BOOT-PROOF END"
systemctl poweroff --no-block
EOF
printf '%s\n' '[Unit]' 'Description=Boot proof: report the Cohort units on the serial console' \
  After=multi-user.target '[Service]' Type=simple ExecStart=/usr/local/sbin/boot-proof-report \
  StandardOutput=tty StandardError=tty TTYPath=/dev/ttyS0 '[Install]' WantedBy=multi-user.target \
  >"$root/etc/systemd/system/boot-proof-report.service"
say "enabling (as the user data does): $enable"
systemctl --root="$root" enable -q $enable boot-proof-report.service
systemctl --root="$root" mask -q serial-getty@ttyS0.service # the report owns the console
if [ -e "$root/var/log/cohort" ] || [ -e "$root/var/lib/cohort" ]; then
  say "the image already has /var/log/cohort or /var/lib/cohort: the proof would prove nothing" >&2; exit 1
fi
size=$(($(du -sm "$root" | cut -f1) + 768)) && rm -f "$work/root.img"
mkfs.ext4 -q -L cohort-root -d "$root" "$work/root.img" "${size}M"
say "image $work/root.img (${size} MiB) built in $(($(date +%s) - started)) s"
[ "${1:-}" = "--build-only" ] && exit 0

# --- 4. boot ------------------------------------------------------------------------------------
say "booting (${BOOT_PROOF_ACCEL:-tcg}); console in $log"
booted=$(date +%s)
timeout "${BOOT_PROOF_TIMEOUT:-1800}" qemu-system-x86_64 -machine q35 -accel "${BOOT_PROOF_ACCEL:-tcg}" \
  -cpu max -smp 2 -m 2048 -nographic -no-reboot -nic none \
  -kernel "$kernel" -append "console=ttyS0 root=/dev/nvme0n1 rw rootfstype=ext4 panic=-1 loglevel=4" \
  -drive file="$work/root.img",format=raw,if=none,id=root -device nvme,drive=root,serial=cohort-root \
  </dev/null 2>&1 | tr -d '\r' >"$log" || true
say "guest ran $(($(date +%s) - booted)) s; total $(($(date +%s) - started)) s"

# --- 5. verdict ---------------------------------------------------------------------------------
# A unit fails the proof when it is failed, restarting, unsuccessful or (enabled) not started,
# unless it runs one of the project's real binaries and that exited with status 1: it started and
# gave up on what this guest lacks (the database, AWS, an enclave), a warning. Status 2 (a usage
# error: an option the binary does not know), systemd's 200-243 (209/STDOUT, 217/USER...) and
# ordering cycles (systemd drops one of the jobs, at random) fail.
failed=0
fail() { say "FAIL: $*" >&2; failed=1; }
grep -q '^=== BOOT-PROOF END' "$log" || { fail "no report (boot failed or timed out)"; tail -n 40 "$log" >&2; exit 1; }
report=$(sed -n '/^=== BOOT-PROOF BEGIN/,/^=== BOOT-PROOF END/p' "$log")
while read -r _ unit props; do
  echo "  $unit: $props"
  declare -A p=() && for kv in $props; do p[${kv%%=*}]=${kv#*=}; done
  state=${p[ActiveState]:-}
  if [ "$state" != failed ] && [ "${p[Result]:-}" = success ] && [ "${p[NRestarts]:-0}" = 0 ]; then
    [[ " $enable " != *" $unit "* || $state == active || $state == activating ]] && continue
    fail "$unit is enabled but $state/${p[SubState]:-}: never started"; continue
  fi
  bin=$(sed -n 's|^ExecStart=/usr/local/bin/\(cohort-[a-z-]*\).*|\1|p' "$root/etc/systemd/system/$unit")
  why="${p[ActiveState]:-}/${p[SubState]:-}, ${p[Result]:-}, status ${p[ExecMainStatus]:-?}, ${p[NRestarts]:-0} restarts"
  if [ -n "$bin" ] && [[ "$real_bins " == *" $bin "* ]] && [ "${p[ExecMainStatus]:-}" = 1 ]; then
    say "WARN: $unit: $why: the real $bin gave up on what this guest lacks (its log in $log)"
  else
    fail "$unit: $why"
  fi
done < <(grep '^BOOT-PROOF-UNIT' <<<"$report")
if grep -iE 'ordering cycle|dependency on' "$log" | grep -v '^---' | awk '!seen[$0]++ {print "  " $0}' | grep .; then
  fail "an ordering cycle: systemd dropped a start job to break it (the lines above)"
fi
if grep -E 'status=2[0-4][0-9]/[A-Z_]+' <<<"$report" | sed 's/^/  /' | grep .; then
  fail "systemd could not set up a cohort unit (the statuses above)"
fi
sed -n '/^--- modes/,/^===/p' <<<"$report" | grep -v '^===' | sed 's/^/  /'
for d in /var/log/cohort /var/lib/cohort; do
  line=$(sed -n '/^--- ls -ld/,/^---/p' <<<"$report" | grep -E "^d[rwx-]{9}.* $d\$" || true)
  case "$line" in
    "") fail "$d is missing" ;;
    drwxr-x---*" cohort cohort "*) say "$line" ;;
    *" cohort cohort "*) say "WARN: $d is not mode 0750 (tmpfiles.d/cohort.conf): $line" ;;
    *) fail "$d is not owned by cohort: $line" ;;
  esac
done
[ "$failed" -eq 0 ] || { say "FAILED (console: $log)" >&2; exit 1; }
say "OK: every cohort unit came up (console: $log)"
