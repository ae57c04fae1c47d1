#!/usr/bin/env bash
# The interop corpus: real MCP servers written with the official SDKs and the frameworks people
# deploy, each a tiny server on its package's own API with the same three tools, pinned, on
# 127.0.0.1, probed by the real binary twice:
#   1. `mcpwatch check --json` per case: verdict, era, protocol version, tool count, and one
#      schema hash per hash group (the same server code behind every transport it serves);
#   2. `mcpwatch serve` (embedded SQLite) with every auto-detected case registered through the
#      API: each must reach state `up` with the CLI's era, protocol version and hash.
#
# Usage: tests/interop/run.sh   (from anywhere; builds the debug binary; honours CARGO_TARGET_DIR)
# Installs into $CARGO_TARGET_DIR/interop (default target/interop), reused when the pins match.
# Every server is stopped by its PID when the script exits.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
here="$root/tests/interop"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
work="$target_dir/interop"
mkdir -p "$work"
started=$SECONDS

cargo build --quiet --bin mcpwatch --manifest-path "$root/Cargo.toml"
bin="$target_dir/debug/mcpwatch"
if [ ! -x "$bin" ]; then
  echo "interop: FAIL: no mcpwatch binary at $bin (cargo build did not produce it)"
  exit 1
fi

# --- install the peers (pinned; each step skipped when its stamp matches) -------------------
# venv NAME PACKAGE...: a virtualenv with these packages, every dependency pinned by
# python/constraints-NAME.txt (an old release with today's dependencies can behave
# differently, or not import at all). Reinstalled when the constraints change.
venv() {
  local name="$1"
  shift
  local constraints="$here/python/constraints-$name.txt"
  local stamp
  stamp="$* $(sha256sum "$constraints" | cut -c1-16)"
  if [ "$(cat "$work/venv-$name/.pins" 2>/dev/null)" != "$stamp" ]; then
    echo "interop: installing $* into venv-$name"
    rm -rf "$work/venv-$name"
    python3 -m venv "$work/venv-$name"
    "$work/venv-$name/bin/pip" install --quiet --disable-pip-version-check -c "$constraints" "$@"
    echo "$stamp" >"$work/venv-$name/.pins"
  fi
}
# Python SDK 2.x; the latest 1.x; an early streamable release (1.9.4, with the dependency
# versions it shipped with: today's pydantic breaks its import); PyPI fastmcp 2.x and latest.
venv py2 "mcp==2.3.0"
venv py1 "mcp==1.30.0"
venv py19 "mcp==1.9.4"
venv fastmcp2 "fastmcp==2.14.7"
venv fastmcp4 "fastmcp==4.2.3"

node_dir="$work/node"
mkdir -p "$node_dir"
# Every npm package pinned by node/package-lock.json; reinstalled when the lock changes.
if ! cmp -s "$here/node/package-lock.json" "$node_dir/package-lock.json.installed"; then
  echo "interop: installing the npm corpus ($(tr -d '\n ' <"$here/node/package.json" | grep -o '"dependencies":{[^}]*}'))"
  cp "$here/node/package.json" "$here/node/package-lock.json" "$node_dir/"
  (cd "$node_dir" && npm ci --no-audit --no-fund --silent)
  cp "$here/node/package-lock.json" "$node_dir/package-lock.json.installed"
fi
export NODE_PATH="$node_dir/node_modules"

# The Rust SDK, current and 0.x: two standalone crates built into one target dir.
rust_target="$work/rust"
for crate in rmcp3 rmcp0; do
  CARGO_TARGET_DIR="$rust_target" cargo build --quiet \
    --manifest-path "$here/rust/$crate/Cargo.toml"
done
echo "interop: peers ready after $((SECONDS - started)) s"

# --- start the servers --------------------------------------------------------------------
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
declare -A port
# start KEY COMMAND...: run in the background with its log in $work/KEY.log; port[KEY] is set.
start() {
  local key="$1"
  shift
  port[$key]=$(free_port)
  local cmd=("${@//@PORT@/${port[$key]}}")
  "${cmd[@]}" >"$work/$key.log" 2>&1 &
  pids+=("$!")
}
loopback=(node --require "$here/listen_loopback.cjs")
for mode in stateful-json stateful-sse stateless-json sse; do
  start "py2-$mode" "$work/venv-py2/bin/python" "$here/python/sdk2_server.py" @PORT@ "$mode"
done
for mode in stateful-sse stateful-json stateless-json stateless-sse sse; do
  start "py1-$mode" "$work/venv-py1/bin/python" "$here/python/sdk1_server.py" @PORT@ "$mode"
done
for mode in stateful-sse stateless-json sse; do
  start "py19-$mode" "$work/venv-py19/bin/python" "$here/python/sdk1_server.py" @PORT@ "$mode"
done
for v in fastmcp2 fastmcp4; do
  start "$v-http" "$work/venv-$v/bin/python" "$here/python/fastmcp_server.py" @PORT@ http
  start "$v-sse" "$work/venv-$v/bin/python" "$here/python/fastmcp_server.py" @PORT@ sse
done
for mode in stateful-sse stateful-json stateless-json sse; do
  start "ts-$mode" node "$here/node/sdk_server.cjs" "$node_dir/node_modules/sdk-current" @PORT@ "$mode"
done
for mode in stateless-json stateful-sse; do
  start "ts110-$mode" node "$here/node/sdk_server.cjs" "$node_dir/node_modules/sdk-early" @PORT@ "$mode"
done
start everything-http env PORT=@PORT@ "${loopback[@]}" \
  "$node_dir/node_modules/@modelcontextprotocol/server-everything/dist/index.js" streamableHttp
start everything-sse env PORT=@PORT@ "${loopback[@]}" \
  "$node_dir/node_modules/@modelcontextprotocol/server-everything/dist/index.js" sse
start fastmcp-ts "${loopback[@]}" "$here/node/fastmcp_server.cjs" @PORT@
start rmcp3-json "$rust_target/debug/interop-rmcp3" @PORT@ json
start rmcp3-sse "$rust_target/debug/interop-rmcp3" @PORT@ sse
start rmcp0 "$rust_target/debug/interop-rmcp0" @PORT@

# --- the cases ----------------------------------------------------------------------------
# NAME SERVER PATH ERA PROTOCOL TOOLS HASH-GROUP [mcpwatch check args...]
cases=(
  "py2-json-2026        py2-stateful-json   /mcp stateless       2026-07-28 3  python"
  "py2-json-2025        py2-stateful-json   /mcp streamable_http 2025-11-25 3  python --era streamable_http"
  "py2-sse-2026         py2-stateful-sse    /mcp stateless       2026-07-28 3  python"
  "py2-stateless        py2-stateless-json  /mcp stateless       2026-07-28 3  python"
  "py2-http-sse         py2-sse             /sse http_sse        2024-11-05 3  python"
  "py1-stateful-sse     py1-stateful-sse    /mcp streamable_http 2025-11-25 3  python"
  "py1-stateful-json    py1-stateful-json   /mcp streamable_http 2025-11-25 3  python"
  "py1-stateless-json   py1-stateless-json  /mcp streamable_http 2025-11-25 3  python"
  "py1-stateless-sse    py1-stateless-sse   /mcp streamable_http 2025-11-25 3  python"
  "py1-http-sse         py1-sse             /sse http_sse        2024-11-05 3  python"
  "py19-stateful-sse    py19-stateful-sse   /mcp streamable_http 2025-03-26 3  py19"
  "py19-stateless-json  py19-stateless-json /mcp streamable_http 2025-03-26 3  py19"
  "py19-http-sse        py19-sse            /sse http_sse        2024-11-05 3  py19"
  "fastmcp2-http        fastmcp2-http       /mcp streamable_http 2025-11-25 3  fastmcp2"
  "fastmcp2-sse         fastmcp2-sse        /sse http_sse        2024-11-05 3  fastmcp2"
  "fastmcp4-http        fastmcp4-http       /mcp stateless       2026-07-28 3  fastmcp4"
  "fastmcp4-sse         fastmcp4-sse        /sse http_sse        2024-11-05 3  fastmcp4"
  "ts-stateful-sse      ts-stateful-sse     /mcp streamable_http 2025-11-25 3  ts"
  "ts-stateful-json     ts-stateful-json    /mcp streamable_http 2025-11-25 3  ts"
  "ts-stateless-json    ts-stateless-json   /mcp streamable_http 2025-11-25 3  ts"
  "ts-http-sse          ts-sse              /sse http_sse        2024-11-05 3  ts"
  # 1.10.2 never answers server/discover in stateless JSON mode: the discovery budget case.
  "ts110-stateless-json ts110-stateless-json /mcp streamable_http 2024-11-05 3 ts-early"
  "ts110-stateful-sse   ts110-stateful-sse  /mcp streamable_http 2024-11-05 3  ts-early"
  "fastmcp-ts           fastmcp-ts          /mcp streamable_http 2025-11-25 3  fastmcp-ts"
  "everything-http      everything-http     /mcp streamable_http 2025-11-25 13 everything"
  "everything-sse       everything-sse      /sse http_sse        2024-11-05 13 everything"
  "rmcp3-json-2026      rmcp3-json          /mcp stateless       2026-07-28 3  rmcp3"
  "rmcp3-sse-2026       rmcp3-sse           /mcp stateless       2026-07-28 3  rmcp3"
  "rmcp3-json-2025      rmcp3-json          /mcp streamable_http 2025-11-25 3  rmcp3 --era streamable_http"
  "rmcp0-streamable     rmcp0               /mcp streamable_http 2025-03-26 3  rmcp0"
)

passed=0
failed=0
ok() { echo "ok    $*"; passed=$((passed + 1)); }
fail() { echo "FAIL  $*"; failed=$((failed + 1)); }
declare -A group_hash group_first

# Assert one report (file) against the case's expectations; prints the schema hash.
assert_report() { # FILE ERA PROTOCOL TOOLS
  python3 - "$@" <<'PY'
import json, sys
path, era, protocol, tools = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
try:
    r = json.load(open(path))
except ValueError as e:
    print(f"no JSON report ({e})"); sys.exit(1)
problems = []
if r.get("verdict") != "up":
    problems.append(f"verdict {r.get('verdict')}: {(r.get('failure') or {}).get('message')}")
for key, want in (("era", era), ("protocol_version", protocol), ("tools_count", tools)):
    if r.get(key) != want:
        problems.append(f"{key} {r.get(key)!r} != {want!r}")
if problems:
    print("; ".join(problems)); sys.exit(1)
print(r["schema_hash"])
PY
}

echo "== mcpwatch check, per case"
for line in "${cases[@]}"; do
  read -r name server path era protocol tools group extra <<<"$line"
  url="http://127.0.0.1:${port[$server]}$path"
  # --wait doubles as the readiness gate: the servers start in parallel with this loop.
  # shellcheck disable=SC2086
  "$bin" check "$url" --json --wait 90s --timeout 10s $extra >"$work/$name.json" 2>"$work/$name.stderr" || true
  if hash=$(assert_report "$work/$name.json" "$era" "$protocol" "$tools"); then
    ok "$name: up, $era $protocol, $tools tools, $hash"
    if [ -z "${group_hash[$group]:-}" ]; then
      group_hash[$group]="$hash"
      group_first[$group]="$name"
    elif [ "${group_hash[$group]}" = "$hash" ]; then
      ok "$name: same hash as ${group_first[$group]} (group $group)"
    else
      fail "$name: hash $hash differs from ${group_first[$group]} (${group_hash[$group]}, group $group)"
    fi
  else
    fail "$name: $hash (report in $work/$name.json, server log in $work/$server.log)"
  fi
done

# --- the whole contract ------------------------------------------------------------------
# `check` lists resources, resource templates and prompts when a server advertises them (every
# case above passed `up` with them listed). The reference server has all three: the same
# server over Streamable HTTP and HTTP+SSE must give the same count and hash for each kind.
echo "== the contract: resources, templates and prompts of the reference server, both eras"
if out=$(python3 - "$work/everything-http.json" "$work/everything-sse.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
ka = {k["kind"]: (k["count"], k["hash"]) for k in a.get("contract", [])}
kb = {k["kind"]: (k["count"], k["hash"]) for k in b.get("contract", [])}
want = ["resources", "resource_templates", "prompts"]
if sorted(ka) != sorted(want) or ka != kb:
    print(f"streamable {ka} vs sse {kb}"); sys.exit(1)
if ka["resources"][0] == 0 or ka["prompts"][0] == 0:
    print(f"empty lists: {ka}"); sys.exit(1)
print(", ".join(f"{k} {ka[k][0]} {ka[k][1][:19]}…" for k in want))
PY
); then
  ok "everything contract: $out, the same over both eras"
else
  fail "everything contract: $out"
fi

# --- synthetic tool calls -----------------------------------------------------------------
# Every SDK's `add` through `check --call` (with --allow-write: the corpus servers do not mark
# it read-only), with its 2026-07-28 Mcp-Name header where the case speaks 2026; the reference
# server's read-only tools, one with an outputSchema, called without any override; and its
# tools not marked read-only refused without being called.
echo "== mcpwatch check --call, per case"
assert_calls() { # FILE EXPECT(ok|refused)
  python3 - "$@" <<'PY'
import json, sys
path, expect = sys.argv[1], sys.argv[2]
try:
    r = json.load(open(path))
except ValueError as e:
    print(f"no JSON report ({e})"); sys.exit(1)
calls = r.get("calls") or []
if not calls:
    print(f"no calls in the report (verdict {r.get('verdict')}: {(r.get('failure') or {}).get('message')})"); sys.exit(1)
if expect == "ok":
    bad = [c for c in calls if c.get("failure") or not c.get("called")]
    if bad or r.get("verdict") != "up":
        print(f"verdict {r.get('verdict')}: {bad}"); sys.exit(1)
else:
    bad = [c for c in calls if c.get("called") or "readOnlyHint" not in (c.get("failure") or "")]
    if bad or r.get("verdict") != "degraded" or (r.get("failure") or {}).get("kind") != "tool_call":
        print(f"verdict {r.get('verdict')}: {bad}"); sys.exit(1)
print(", ".join(f"{c['tool']} {c.get('latency_ms')} ms" if c.get("called") else f"{c['tool']} not called" for c in calls))
PY
}
call_case() { # NAME URL EXPECT EXTRA...
  local name="$1" url="$2" expect="$3"
  shift 3
  "$bin" check "$url" --json --timeout 10s "$@" >"$work/$name.calls.json" 2>>"$work/$name.stderr" || true
  if out=$(assert_calls "$work/$name.calls.json" "$expect"); then
    ok "$name --call: $out"
  else
    fail "$name --call: $out (report in $work/$name.calls.json)"
  fi
}
for line in "${cases[@]}"; do
  read -r name server path era protocol tools group extra <<<"$line"
  url="http://127.0.0.1:${port[$server]}$path"
  # shellcheck disable=SC2086
  case "$group" in
    everything)
      call_case "$name" "$url" ok $extra --call 'get-structured-content {"location":"New York"}' \
        --call 'get-sum {"a":2,"b":3}' --call 'echo {"message":"interop"}'
      call_case "$name-write" "$url" refused $extra --call 'toggle-simulated-logging' ;;
    *)
      call_case "$name" "$url" ok $extra --allow-write --call 'add {"a":2,"b":3}' \
        --call 'echo {"message":"interop"}' ;;
  esac
done

# --- the streaming check -----------------------------------------------------------------
# A real nginx (Debian's) in front of two real servers whose tool reports progress: the Python
# SDK 1.x (`count_slowly`, our corpus script) and the reference server
# (`trigger-long-running-operation`). Straight, through nginx with proxy_buffering off, and
# through nginx's defaults (proxy_buffering on), progress streams: both SDKs answer their
# streams with `X-Accel-Buffering: no` (the Python SDK through sse-starlette), which nginx
# honours, so the check must pass (no false alarm). Through nginx told to buffer regardless
# (`proxy_ignore_headers X-Accel-Buffering`, as a proxy set up for caching does) every
# notification is held to the end and the check must say so.
echo "== mcpwatch check --stream-call, straight and through nginx"
start py1-progress "$work/venv-py1/bin/python" "$here/python/sdk1_server.py" @PORT@ stateful-sse progress
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
ngx="$work/nginx"
mkdir -p "$ngx"
declare -A proxied
declare -A nginx_location=(
  [off]="proxy_buffering off;"
  [default]="proxy_buffering on;"
  [forced]="proxy_buffering on; proxy_ignore_headers X-Accel-Buffering;"
)
nginx_servers=""
for upstream in py1-progress everything-http; do
  for variant in off default forced; do
    p=$(free_port)
    proxied[$upstream-$variant]=$p
    nginx_servers+="server { listen 127.0.0.1:$p; location / { proxy_pass http://127.0.0.1:${port[$upstream]}; ${nginx_location[$variant]} } }"$'\n'
  done
done
cat >"$ngx/nginx.conf" <<NGINX
daemon off; master_process off; worker_processes 1; pid $ngx/nginx.pid;
error_log $ngx/error.log warn; events { worker_connections 64; }
http { access_log off; client_body_temp_path $ngx/body; proxy_temp_path $ngx/proxy;
  fastcgi_temp_path $ngx/fastcgi; uwsgi_temp_path $ngx/uwsgi; scgi_temp_path $ngx/scgi;
$nginx_servers}
NGINX
"$nginx_bin" -p "$ngx" -c "$ngx/nginx.conf" -e "$ngx/error.log" >"$work/nginx.log" 2>&1 &
pids+=("$!")
for _ in $(seq 1 100); do
  curl -s -o /dev/null "http://127.0.0.1:${proxied[py1-progress-off]}/" && break
  sleep 0.1
done
for _ in $(seq 1 100); do
  curl -s -o /dev/null "http://127.0.0.1:${port[py1-progress]}/mcp" && break
  sleep 0.1
done
stream_case() { # NAME PORT PATH EXPECT(streamed|buffered) SPEC
  local name="$1" p="$2" path="$3" expect="$4" spec="$5"
  local report="$work/$name.stream.json"
  "$bin" check "http://127.0.0.1:$p$path" --json --timeout 10s --stream-call "$spec" \
    >"$report" 2>>"$work/$name.stderr" || true
  if out=$(python3 - "$report" "$expect" <<'PY'
import json, sys
path, expect = sys.argv[1], sys.argv[2]
try:
    r = json.load(open(path))
except ValueError as e:
    print(f"no JSON report ({e})"); sys.exit(1)
s = r.get("stream") or {}
seen = f"{s.get('notifications')} notifications, first {s.get('first_ms')} ms, result {s.get('result_ms')} ms"
kind = (r.get("failure") or {}).get("kind")
if expect == "streamed" and (r.get("verdict") != "up" or s.get("failure") or s.get("notifications", 0) < 2):
    print(f"verdict {r.get('verdict')}: {seen}: {s.get('failure')}"); sys.exit(1)
if expect == "buffered" and (r.get("verdict") != "degraded" or kind != "streaming"):
    print(f"verdict {r.get('verdict')}, kind {kind}: {seen}"); sys.exit(1)
print(f"{expect}: {seen}")
PY
  ); then
    ok "$name --stream-call: $out"
  else
    fail "$name --stream-call: $out (report in $report)"
  fi
}
py_spec='count_slowly {"steps":4}'
ev_spec='trigger-long-running-operation {"duration":1,"steps":4}'
stream_case py1-progress "${port[py1-progress]}" /mcp streamed "$py_spec"
stream_case everything-http "${port[everything-http]}" /mcp streamed "$ev_spec"
for variant in off default forced; do
  expect=streamed
  [ "$variant" = forced ] && expect=buffered
  stream_case "py1-progress-nginx-$variant" "${proxied[py1-progress-$variant]}" /mcp "$expect" "$py_spec"
  stream_case "everything-http-nginx-$variant" "${proxied[everything-http-$variant]}" /mcp "$expect" "$ev_spec"
done
stream_case everything-sse "${port[everything-sse]}" /sse streamed "$ev_spec"

# --- the daemon ---------------------------------------------------------------------------
echo "== mcpwatch serve: every auto-detected case registered through the API"
data="$work/serve-data"
rm -rf "$data"
api_port=$(free_port)
MCPWATCH_DATA_DIR="$data" MCPWATCH_LISTEN="127.0.0.1:$api_port" \
  MCPWATCH_ALLOW_PRIVATE_CIDRS=127.0.0.0/8 RUST_LOG=warn \
  "$bin" serve >"$work/serve.log" 2>&1 &
pids+=("$!")
api="http://127.0.0.1:$api_port/api/v1"
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$api_port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
token=$(cat "$data/admin-token")
registered=()
for line in "${cases[@]}"; do
  read -r name server path era protocol tools group extra <<<"$line"
  [ -z "$extra" ] || continue
  url="http://127.0.0.1:${port[$server]}$path"
  if curl -fsS -X POST "$api/servers" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' \
    -d "{\"name\": \"$name\", \"slug\": \"$name\", \"url\": \"$url\"}" >/dev/null; then
    registered+=("$line")
  else
    fail "$name: registration refused"
  fi
done
# Wait (bounded) until every registered server has a state other than unknown.
for _ in $(seq 1 60); do
  curl -fsS "$api/status" -H "Authorization: Bearer $token" >"$work/serve-status.json"
  python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); sys.exit(s["counts"]["unknown"] != 0)' \
    "$work/serve-status.json" && break
  sleep 1
done
for line in "${registered[@]}"; do
  read -r name server path era protocol tools group extra <<<"$line"
  if why=$(python3 - "$work/serve-status.json" "$name" "$era" "$protocol" "$tools" "$work/$name.json" <<'PY'
import json, sys
path, slug, era, protocol, tools, cli_path = sys.argv[1:7]
servers = {s["slug"]: s for s in json.load(open(path))["servers"]}
s = servers.get(slug)
if s is None:
    print("not in /api/v1/status"); sys.exit(1)
last = s.get("last_result") or {}
problems = []
if s.get("state") != "up":
    problems.append(f"state {s.get('state')}: {(last.get('failure') or {}).get('message')}")
for key, got, want in (("era", last.get("era"), era), ("protocol_version", last.get("protocol_version"), protocol),
                       ("tools_count", last.get("tools_count"), int(tools))):
    if got != want:
        problems.append(f"{key} {got!r} != {want!r}")
try:
    cli_hash = json.load(open(cli_path)).get("schema_hash")
except ValueError:
    cli_hash = None
if s.get("schema_hash") != cli_hash:
    problems.append(f"schema_hash {s.get('schema_hash')} != the CLI's {cli_hash}")
if problems:
    print("; ".join(problems)); sys.exit(1)
PY
  ); then
    ok "serve: $name up, $era $protocol, the CLI's hash"
  else
    fail "serve: $name: $why"
  fi
done

echo "interop: ${#cases[@]} cases, $((SECONDS - started)) s in all"
echo "interop: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
