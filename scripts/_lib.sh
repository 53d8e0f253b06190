# Shared helpers for scripts/start and scripts/test (sourced, not run).

# Find uv, or install it into a private virtualenv (.cache/uv) with the machine's python3.
ensure_uv() {
  if command -v uv >/dev/null 2>&1; then
    UV=$(command -v uv)
    return
  fi
  local venv=".cache/uv"
  if [ ! -x "$venv/bin/uv" ]; then
    echo "==> installing uv into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'uv>=0.5'
  fi
  UV="$PWD/$venv/bin/uv"
}

# Start the local PostgreSQL cluster when it is installed but not running.
ensure_postgres() {
  local host=${PGHOST_FOR_TESTS:-127.0.0.1} port=${PGPORT_FOR_TESTS:-5432}
  if command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h "$host" -p "$port"; then
    return
  fi
  if ! command -v pg_ctlcluster >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing PostgreSQL (apt-get)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    local version
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
    if [ -n "$version" ]; then
      echo "==> starting PostgreSQL $version" >&2
      pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
      for _ in $(seq 1 30); do
        pg_isready -q -h "$host" -p "$port" && return
        sleep 1
      done
    fi
  fi
  echo "warning: PostgreSQL is not running at $host:$port; PostgreSQL tests will fail under CI=true" >&2
}

# Install promtool (Debian's prometheus package ships it) when it is missing, for the tests of
# deploy/alerts.yml. The Prometheus server itself is neither started nor enabled.
ensure_promtool() {
  if command -v promtool >/dev/null 2>&1; then
    return
  fi
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "warning: promtool is missing (apt-get install prometheus); its tests will fail under CI=true" >&2
    return
  fi
  echo "==> installing promtool (apt-get install prometheus, service not started)" >&2
  local policy=/usr/sbin/policy-rc.d own_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null || true
  if [ -n "$own_policy" ]; then rm -f "$policy"; fi
  if command -v systemctl >/dev/null 2>&1; then
    systemctl disable --quiet prometheus.service >/dev/null 2>&1 || true
  fi
  command -v promtool >/dev/null 2>&1 || echo "warning: promtool could not be installed; its tests will fail under CI=true" >&2
}

# Install Debian's Chromium for the dashboard's browser tests when /usr/bin/chromium is missing
# (Playwright drives it; no browser build is ever downloaded).
ensure_chromium() {
  if [ -x /usr/bin/chromium ]; then
    return
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing Chromium (apt-get)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || true
  fi
  [ -x /usr/bin/chromium ] || echo "warning: /usr/bin/chromium is missing; the browser tests will fail under CI=true" >&2
}
