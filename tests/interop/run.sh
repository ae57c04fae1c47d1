#!/usr/bin/env bash
# Real-peer interop: the official TypeScript reference server (npm) and a server on the
# official Python SDK (PyPI), each on 127.0.0.1, probed by the real `mcpwatch check --json`.
#
# Asserts for each: verdict up, the era, the tool count; and one schema hash for the Python
# server across eras (2026 stateless and 2025 initialize), reply shapes (JSON and SSE) and the
# 2024 HTTP+SSE transport. Servers are stopped by PID when the script exits.
#
# Usage: tests/interop/run.sh            (from anywhere; builds the debug binary if needed)
# Installs into target/interop/ (pinned versions; reused when present).
set -euo pipefail

EVERYTHING_VERSION="2026.8.31"
PY_MCP_VERSION="2.3.0"

root="$(cd "$(dirname "$0")/../.." && pwd)"
here="$root/tests/interop"
work="$root/target/interop"
mkdir -p "$work"

cargo build --quiet --bin mcpwatch --manifest-path "$root/Cargo.toml"
bin="$root/target/debug/mcpwatch"

# --- install the peers (pinned) ----------------------------------------------------------
everything="$work/node_modules/@modelcontextprotocol/server-everything"
if [ "$(node -p "try{require('$everything/package.json').version}catch(e){''}")" != "$EVERYTHING_VERSION" ]; then
  echo "interop: installing @modelcontextprotocol/server-everything@$EVERYTHING_VERSION"
  (cd "$work" && npm install --no-audit --no-fund --silent "@modelcontextprotocol/server-everything@$EVERYTHING_VERSION")
fi
if ! "$work/venv/bin/python" -c "import importlib.metadata as m,sys; sys.exit(m.version('mcp')!='$PY_MCP_VERSION')" 2>/dev/null; then
  echo "interop: installing mcp==$PY_MCP_VERSION into a virtualenv"
  python3 -m venv "$work/venv"
  "$work/venv/bin/pip" install --quiet --disable-pip-version-check "mcp==$PY_MCP_VERSION"
fi

# --- start servers -----------------------------------------------------------------------
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start_everything() { # mode port
  PORT="$2" node --require "$here/listen_loopback.cjs" "$everything/dist/index.js" "$1" \
    >"$work/everything-$1.log" 2>&1 &
  pids+=("$!")
}
start_python() { # mode port
  "$work/venv/bin/python" "$here/python_server.py" "$2" "$1" >"$work/python-$1.log" 2>&1 &
  pids+=("$!")
}

p_ev_http=$(free_port); start_everything streamableHttp "$p_ev_http"
p_ev_sse=$(free_port); start_everything sse "$p_ev_sse"
p_py_json=$(free_port); start_python streamable-json "$p_py_json"
p_py_sse=$(free_port); start_python streamable-sse "$p_py_sse"
p_py_legacy=$(free_port); start_python sse "$p_py_legacy"

# --- probe and assert --------------------------------------------------------------------
passed=0
failed=0
declare -A hashes

# check NAME URL EXPECT_ERA EXPECT_TOOLS [extra mcpwatch args...]
check() {
  local name="$1" url="$2" era="$3" tools="$4"
  shift 4
  local out
  # --wait doubles as the readiness gate: servers need a moment to start.
  out=$("$bin" check "$url" --json --wait 60s --timeout 10s "$@" 2>"$work/$name.stderr") || true
  echo "$out" >"$work/$name.json"
  if result=$(python3 - "$era" "$tools" "$work/$name.json" <<'PY'
import json, sys
era, tools, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
r = json.load(open(path))
problems = []
if r.get("verdict") != "up":
    problems.append(f"verdict {r.get('verdict')}: {r.get('failure')}")
if r.get("era") != era:
    problems.append(f"era {r.get('era')} != {era}")
if r.get("tools_count") != tools:
    problems.append(f"tools_count {r.get('tools_count')} != {tools}")
if problems:
    print("; ".join(problems)); sys.exit(1)
print(r["schema_hash"])
PY
  ); then
    echo "ok    $name: up, $era, $tools tools, $result"
    hashes[$name]="$result"
    passed=$((passed + 1))
  else
    echo "FAIL  $name: $result (report in target/interop/$name.json)"
    failed=$((failed + 1))
  fi
}

check everything-streamable "http://127.0.0.1:$p_ev_http/mcp" streamable_http 13
check everything-sse "http://127.0.0.1:$p_ev_sse/sse" http_sse 13
check python-json-2026 "http://127.0.0.1:$p_py_json/mcp" stateless 3
check python-json-2025 "http://127.0.0.1:$p_py_json/mcp" streamable_http 3 --era streamable_http
check python-sse-2026 "http://127.0.0.1:$p_py_sse/mcp" stateless 3
check python-sse-2025 "http://127.0.0.1:$p_py_sse/mcp" streamable_http 3 --era streamable_http
check python-http-sse "http://127.0.0.1:$p_py_legacy/sse" http_sse 3

# One Python server, one hash: across eras, reply shapes and transports.
reference="${hashes[python-json-2026]:-none}"
for name in python-json-2025 python-sse-2026 python-sse-2025 python-http-sse; do
  if [ "${hashes[$name]:-missing}" = "$reference" ]; then
    echo "ok    hash of $name equals python-json-2026"
    passed=$((passed + 1))
  else
    echo "FAIL  hash of $name (${hashes[$name]:-missing}) differs from python-json-2026 ($reference)"
    failed=$((failed + 1))
  fi
done

echo "interop: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
