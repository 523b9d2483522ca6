#!/usr/bin/env bash
# Writes the golden help texts (Tests/ShardQuantTests/Fixtures/help/) from the built shardquant:
# rerun by hand after changing any command's help, read the diff, and commit it.
# Output goes through a pipe, as in the tests (swift-argument-parser wraps at 80 columns then).
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${SHARDQUANT_BINARY:-.build/debug/shardquant}
folder=Tests/ShardQuantTests/Fixtures/help
mkdir -p "$folder"
while read -r name arguments; do
  # shellcheck disable=SC2086
  "$binary" $arguments --help | cat > "$folder/$name.txt"
done <<'LIST'
shardquant
calibrate calibrate
merge merge
report report
observe observe
infer infer
embed embed
export export
export-reshard export reshard
bench bench
bench-forward bench forward
bench-gemm bench gemm
bench-calibrate bench calibrate
bench-gptq bench gptq
perplexity perplexity
generate generate
LIST
ls "$folder"
