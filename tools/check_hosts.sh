#!/usr/bin/env bash
# Multi-host checks on real (namespaced) hosts: launch/hosts up 2 makes two Linux network
# namespaces joined over veth to a bridge, each its own address and hostname, and launch/shardquant
# --hostfile runs Open MPI's daemons in them (TCP between the hosts, shared memory within one).
#  1. GPT preset, --reproducible, every activation observer: T = 2 with one rank per host
#     (--map-by node: every collective crosses the link) gives scales.json `layers` bit-identical
#     to the same job on one host; abs_max and hist also at T = 2 × D = 2 with two ranks per host,
#     both placements (tensor-parallel pairs within a host, and across the hosts);
#  2. SmolLM2 (the GGUF launch/setup caches), --reproducible hist, T = 2 with one rank per host and
#     T = 2 × D = 2 with two per host: `layers` bit-identical to the same grid on one host
#     (check_llama.sh compares T = 2 with T = 1);
#  3. the bytes that crossed the link (the veth pair's counters) and the job's own collective bytes
#     (`calibrate --verbose`) are printed for one run of each;
#  4. faults: host 2's processes killed with SIGKILL mid-run, and host 2's link taken down mid-run:
#     every rank ends (mpirun non-zero within BOUND seconds, no process left on either host),
#     stderr names host 2, and no output folder exists;
#  5. launch/hosts down leaves no namespace, bridge or process behind.
# Skips (saying so, exit 0) when this machine cannot make network namespaces: the probe tries.
# Usage: tools/check_hosts.sh    (SHARDQUANT_BINARY: the release binary)
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
binary="$(cd "$(dirname "${SHARDQUANT_BINARY:-.build/release/shardquant}")" && pwd)/$(basename "${SHARDQUANT_BINARY:-.build/release/shardquant}")"
export SHARDQUANT_BINARY="$binary"
checkpoint="${SHARDQUANT_SMOLLM2:-$HOME/.cache/shardquant/smollm2}/SmolLM2-135M-Instruct.Q4_1.gguf"
work="$(mktemp -d)"
failures=0
fail() { echo "FAIL $* [${SECONDS} s]"; failures=$((failures + 1)); }
pass() { echo "ok   $* [${SECONDS} s]"; }
set +e
up_output="$(launch/hosts up 2 2>&1)"
up_status=$?
set -e
if [ "$up_status" -eq 2 ]; then
  echo "check_hosts: SKIPPED, no multi-host checks on this machine: $up_output"
  rm -rf "$work"
  exit 0
fi
[ "$up_status" -eq 0 ] || { echo "check_hosts: launch/hosts up 2 failed: $up_output" >&2; exit 1; }
trap 'launch/hosts down; rm -rf "$work"' EXIT
hostfile="$(tail -1 <<< "$up_output")"
second_address="$(awk '$1 == "sqh2" {print $2}' "$(dirname "$hostfile")/names")"
link_bytes() { echo $(( $(cat /sys/class/net/sqv1/statistics/rx_bytes) + $(cat /sys/class/net/sqv1/statistics/tx_bytes) )); }
same_layers() {  # same_layers A/scales.json B/scales.json -> "N layers"; status 0 when bit-identical
  python3 - "$1" "$2" <<'PY'
import json, sys
a, b = (json.load(open(path))["layers"] for path in sys.argv[1:3])
print(f"{len(a)} layers")
sys.exit(0 if a == b and a else 1)
PY
}
gpt=(calibrate --model gpt --hidden 96 --heads 12 --layers 2 --ffn 384 --vocab 256 --seq 32 --batch-size 4
     --steps 3 --weight-observer abs_max_channel_wise --reproducible --quiet)

# 1. The GPT preset across the hosts against one host.
for observer in abs_max avg hist kl mse emd; do
  launch/shardquant -np 2 "${gpt[@]}" --observer "$observer" --tp 2 --out "$work/local-$observer" < /dev/null > /dev/null
  before=$(link_bytes)
  if ! launch/shardquant --hostfile "$hostfile" --map-by node -np 2 "${gpt[@]}" --observer "$observer" --tp 2 \
      --out "$work/hosts-$observer" < /dev/null > "$work/hosts-$observer.log" 2>&1; then
    fail "T = 2 across 2 hosts ($observer) did not run: $(tail -5 "$work/hosts-$observer.log")"; continue
  fi
  crossed=$(( $(link_bytes) - before ))
  if message="$(same_layers "$work/local-$observer/scales.json" "$work/hosts-$observer/scales.json")"; then
    pass "$observer: T = 2, one rank per host = one host, bit for bit ($message; $crossed bytes crossed host 1's link)"
  else fail "$observer: T = 2 across hosts differs from one host ($message)"; fi
done
for observer in abs_max hist; do
  launch/shardquant -np 4 "${gpt[@]}" --observer "$observer" --tp 2 --dp 2 --out "$work/local22-$observer" < /dev/null > /dev/null
  for placement in slot node; do
    before=$(link_bytes)
    if ! launch/shardquant --hostfile "$hostfile" --map-by "$placement" -np 4 "${gpt[@]}" --observer "$observer" --tp 2 --dp 2 \
        --out "$work/hosts22-$observer-$placement" < /dev/null > "$work/hosts22.log" 2>&1; then
      fail "T = 2 × D = 2 across 2 hosts ($observer, --map-by $placement) did not run: $(tail -5 "$work/hosts22.log")"; continue
    fi
    crossed=$(( $(link_bytes) - before ))
    what="tensor-parallel pairs within a host"; [ "$placement" = node ] && what="tensor-parallel pairs across the hosts"
    if message="$(same_layers "$work/local22-$observer/scales.json" "$work/hosts22-$observer-$placement/scales.json")"; then
      pass "$observer: T = 2 × D = 2, two ranks per host ($what) = one host, bit for bit ($message; $crossed bytes crossed)"
    else fail "$observer: T = 2 × D = 2 across hosts ($what) differs from one host ($message)"; fi
  done
done

# 2. SmolLM2 across the hosts.
# one_host OUT ARGS...: the one-host reference run. Once in CI (stop 31) its mpirun reported a rank
# "exiting improperly" with no message from the rank and no kernel trace, and did not recur by hand;
# such a launch is reported here, with mpirun's words, and retried once (a second failure stops).
one_host() {
  local out="$1"; shift
  if ! launch/shardquant "$@" --quiet --out "$out" < /dev/null > /dev/null 2> "$out.log"; then
    echo "note the one-host run $(basename "$out") failed and is retried: $(grep -E '[a-z]' "$out.log" | head -3 | tr '\n' ' ')"
    rm -rf "$out"
    launch/shardquant "$@" --quiet --out "$out" < /dev/null > /dev/null
  fi
}
if [ -s "$checkpoint" ]; then
  llama=(calibrate --model llama --text examples/llama/GPL-2.txt --seq 32 --batch-size 2 --steps 2 --observer hist --reproducible --tp 2)
  one_host "$work/llama-local" -np 2 "${llama[@]}"
  before=$(link_bytes)
  if launch/shardquant --hostfile "$hostfile" --map-by node -np 2 "${llama[@]}" --verbose --out "$work/llama-hosts" \
      < /dev/null > "$work/llama-hosts.log" 2>&1; then
    crossed=$(( $(link_bytes) - before ))
    if message="$(same_layers "$work/llama-local/scales.json" "$work/llama-hosts/scales.json")"; then
      pass "SmolLM2 hist: T = 2, one rank per host = one host, bit for bit ($message; $crossed bytes crossed host 1's link)"
    else fail "SmolLM2 across hosts differs from one host ($message)"; fi
    grep -E "^(statistics|model) collectives" "$work/llama-hosts.log" | sed 's/^/     SmolLM2 rank 0 /' || true
  else fail "SmolLM2 T = 2 across 2 hosts did not run: $(tail -5 "$work/llama-hosts.log")"; fi
  # T = 2 × D = 2, two ranks per host (tensor-parallel pairs within a host), against one host.
  one_host "$work/llama22-local" -np 4 "${llama[@]}" --dp 2
  before=$(link_bytes)
  if launch/shardquant --hostfile "$hostfile" -np 4 "${llama[@]}" --dp 2 --quiet --out "$work/llama22-hosts" \
      < /dev/null > "$work/llama22-hosts.log" 2>&1; then
    crossed=$(( $(link_bytes) - before ))
    if message="$(same_layers "$work/llama22-local/scales.json" "$work/llama22-hosts/scales.json")"; then
      pass "SmolLM2 hist: T = 2 × D = 2, two ranks per host = one host, bit for bit ($message; $crossed bytes crossed)"
    else fail "SmolLM2 T = 2 × D = 2 across hosts differs from one host ($message)"; fi
  else fail "SmolLM2 T = 2 × D = 2 across 2 hosts did not run: $(tail -5 "$work/llama22-hosts.log")"; fi
else
  fail "no SmolLM2 checkpoint at $checkpoint (launch/setup fetches it)"
fi

# 4. Faults on host 2, mid-run. BOUND covers Open MPI's keepalive (launch/shardquant: 5 s idle,
#    3 probes 3 s apart) with room for a loaded machine.
bound=60
fault() {  # fault kill|link DESCRIPTION
  local action=$1 name=$2 started status elapsed
  rm -rf "$work/fault-$action"
  launch/shardquant --hostfile "$hostfile" --map-by node -np 2 "${gpt[@]}" --observer hist --steps 100000 --tp 2 \
    --out "$work/fault-$action" < /dev/null > /dev/null 2> "$work/fault-$action.err" &
  local launcher=$!
  # Wait until both ranks run (a rank process on each host), then strike.
  for _ in $(seq 100); do
    ip netns pids sqh1 | xargs -r ps -o comm= -p | grep -q shardquant \
      && ip netns pids sqh2 | xargs -r ps -o comm= -p | grep -q shardquant && break
    sleep 0.1
  done
  sleep 2
  started=$(date +%s.%N)
  case "$action" in
    kill) kill -9 $(ip netns pids sqh2) ;;
    link) ip link set sqv2 down ;;
  esac
  set +e
  timeout $((bound + 30)) tail --pid="$launcher" -f /dev/null
  wait "$launcher"
  status=$?
  set -e
  elapsed=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$started" "$(date +%s.%N)")
  local left; left="$(ip netns pids sqh1) $(ip netns pids sqh2)"
  [ "$action" = link ] && ip link set sqv2 up
  if [ "$status" -ne 0 ] && python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= float(sys.argv[2]) else 1)" "$elapsed" "$bound" \
      && [ -z "${left// /}" ] && [ ! -e "$work/fault-$action" ] \
      && grep -q -e "$second_address" -e sqh2 "$work/fault-$action.err"; then
    pass "$name: the job ended with status $status after $elapsed s (bound $bound s), no process left, no output folder, stderr names host 2: $(grep -m1 -o -e "node $second_address" -e "Peer host: *$second_address" "$work/fault-$action.err" || true)"
  else
    fail "$name: status $status after $elapsed s, processes left: '${left// /}', output folder: $([ -e "$work/fault-$action" ] && echo yes || echo no); $(tail -5 "$work/fault-$action.err")"
  fi
}
fault kill "host 2's processes killed (SIGKILL)"
launch/hosts down; hostfile="$(launch/hosts up 2 | tail -1)"
fault link "host 2's link taken down"

# 5. Nothing left behind.
trap 'rm -rf "$work"' EXIT
launch/hosts down
leftover="$(ip netns list | grep -E '^sqh' || true)$(ip link show sqbr0 2>/dev/null || true)$(ip link show | grep -o 'sqv[0-9]*' || true)"
if [ -z "$leftover" ]; then pass "launch/hosts down: no namespace, bridge or veth left"; else fail "launch/hosts down left: $leftover"; fi

echo "check_hosts: $failures failed"
[ "$failures" -eq 0 ]
