#!/usr/bin/env bash
# Installs what building and testing Cohort needs on a fresh Debian machine, and nothing that is
# already there. Called by scripts/demo.sh and scripts/test.sh; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v m4 >/dev/null 2>&1 || need_apt+=(m4)            # GMP (cggmp21 via rug) builds with m4
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v c++ >/dev/null 2>&1 || need_apt+=(g++)              # libbitcoinconsensus (C++)
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)       # installs anvil (EVM node)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
[ -f /usr/include/openssl/ssl.h ] || need_apt+=(libssl-dev)       # the EIF library signs with OpenSSL
[ -x /bin/busybox ] || need_apt+=(busybox-static)                  # stand-in init of test images
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)  # scripts/check-units.sh

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# PostgreSQL for the coordinator's storage suite: start the local cluster if it is down, install
# it (with trust authentication on 127.0.0.1, as on these machines) if it is absent.
as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  installed_here=""
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "setup: installing PostgreSQL"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
    installed_here=1
  fi
  version=$(ls /etc/postgresql | sort -n | tail -n 1)
  if [ -n "$installed_here" ]; then
    echo "host all all 127.0.0.1/32 trust" | $SUDO tee -a "/etc/postgresql/$version/main/pg_hba.conf" >/dev/null
  fi
  echo "setup: starting PostgreSQL $version"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 1
  done
  if ! as_postgres psql -lqt 2>/dev/null | cut -d'|' -f1 | grep -qw test; then
    as_postgres createdb test 2>/dev/null || true
  fi
fi

# initdb and pg_ctl for coordinator/tests/store_tls.rs, which starts a PostgreSQL of its own with
# TLS (as the postgres user when run as root): Debian's postgresql package brings them, under
# /usr/lib/postgresql/VERSION/bin, and the postgres user. A server running without them (another
# package, a container) is not enough.
if ! ls /usr/lib/postgresql/*/bin/initdb /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 \
  || ! id postgres >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing PostgreSQL's server binaries (initdb, pg_ctl)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi

# RabbitMQ for the coordinator's broker tests (tests/tests/broker.rs, issue 21): start it if it
# is down, install Debian's rabbitmq-server if it is absent. Its default user guest/guest may log
# in from localhost only, which is what the tests use.
amqp_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }
if ! amqp_up; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  if ! command -v rabbitmq-server >/dev/null 2>&1 && [ ! -x /usr/sbin/rabbitmq-server ]; then
    echo "setup: installing RabbitMQ"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq rabbitmq-server >/dev/null
  fi
  echo "setup: starting RabbitMQ"
  $SUDO service rabbitmq-server start >/dev/null 2>&1 || $SUDO /usr/sbin/rabbitmq-server -detached || true
  for _ in $(seq 1 60); do
    amqp_up && break
    sleep 1
  done
  amqp_up || echo "setup: RabbitMQ did not come up on 127.0.0.1:5672 (the broker tests will fail)" >&2
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is missing; install the Rust toolchain (rustc 1.95) first" >&2
  exit 1
fi
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    echo "setup: adding rustup component $component"
    rustup component add "$component"
  fi
done

# A Linux kernel from Debian's packages for the enclave image tests (eif-build/); images for AWS
# use nitro-cli's kernel instead. Kept in the cache directory beside the CI target directory.
KERNEL_DIR="${COHORT_CACHE:-$HOME/.cache/cohort}/kernel"
if [ ! -s "$KERNEL_DIR/vmlinuz" ]; then
  kernel_package() {
    apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}'
  }
  scratch=$(mktemp -d)
  pkg=$(kernel_package)
  # Stale package lists name a version the mirror no longer has: refresh them and retry once.
  if [ -z "$pkg" ] || ! (cd "$scratch" && apt-get download -qq "$pkg" 2>/dev/null); then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    pkg=$(kernel_package)
    (cd "$scratch" && apt-get download -qq "$pkg")
  fi
  echo "setup: fetched Debian's kernel package $pkg for the enclave image tests"
  dpkg-deb --fsys-tarfile "$scratch"/*.deb | tar -x -C "$scratch" ./boot
  mkdir -p "$KERNEL_DIR"
  cp "$scratch"/boot/config-* "$KERNEL_DIR/config"
  cp "$scratch"/boot/vmlinuz-* "$KERNEL_DIR/vmlinuz.part"
  echo "$pkg" >"$KERNEL_DIR/package"
  mv "$KERNEL_DIR/vmlinuz.part" "$KERNEL_DIR/vmlinuz"
  rm -rf "$scratch"
fi

# anvil, the EVM node the Ethereum tests and the demo send transactions to: the npm package
# @foundry-rs/anvil-linux-amd64 at the version dev/tools/package-lock.json pins, into dev/tools/.
ANVIL=dev/tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil
if ! "$ANVIL" --version >/dev/null 2>&1; then
  echo "setup: installing anvil (npm @foundry-rs/anvil-linux-amd64) into dev/tools/"
  npm ci --prefix dev/tools --no-audit --no-fund --loglevel=error >/dev/null
  "$ANVIL" --version | head -n 1
fi
