#!/usr/bin/env bash
# `make demo`: the main job on the embedded defaults. Uses a store of its own under .demo/ so that
# your ~/.likeme is left alone.
set -euo pipefail
BIN=${1:-.venv/bin}
export LIKEME_HOME="$PWD/.demo"
rm -rf "$LIKEME_HOME"
SAMPLE="examples/WhatsApp Chat with Sam.txt"

echo "== likeme ingest \"$SAMPLE\""
"$BIN/likeme" ingest "$SAMPLE"
echo
echo "== likeme people"
"$BIN/likeme" people
echo
echo "== likeme messages --author Ana --limit 5"
"$BIN/likeme" messages --author Ana --limit 5
echo
echo "== likeme ingest again (nothing new is added)"
"$BIN/likeme" ingest "$SAMPLE"
