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
