#!/usr/bin/env bash
# `make demo`: the main job on the embedded defaults, in a store and run folder of its own under
# .demo/ (your ~/.likeme is left alone). Sam, Kai and Robin's group chat is written from the
# dialogue that chatterbot-corpus ships; likeme learns Robin's voice on the CPU and answers as Robin.
set -euo pipefail
BIN=${1:-.venv/bin}
STEPS=${DEMO_STEPS:-30}
export LIKEME_HOME="$PWD/.demo"
rm -rf "$LIKEME_HOME/runs" "$LIKEME_HOME/likeme.db"* "$LIKEME_HOME/chats"
CHAT="$LIKEME_HOME/chats/WhatsApp Chat with Robin.txt"
LATER="$LIKEME_HOME/chats/WhatsApp Chat with Robin (later).txt"

echo "== a group chat from chatterbot-corpus"
"$BIN/python" examples/chatterbot_chat.py "$LIKEME_HOME/chats"
echo
echo "== likeme ingest"
"$BIN/likeme" ingest "$CHAT"
"$BIN/likeme" people
echo
echo "== likeme train voice --as Robin --max-steps $STEPS   (LoRA on smollm2-135m, CPU: everyone's turns in their"
echo "   own slots, a contrast voice of Robin against Sam and Kai, then a register voice, merged 0.7 / 0.3)"
"$BIN/likeme" train voice --as Robin --max-steps "$STEPS" --heldout 0.05 --eval-every 15 --eval-max 24 \
    --out "$LIKEME_HOME/runs/robin"
echo
echo "== likeme chat: you are Sam, it answers as Robin"
for q in "What is your favorite book?" "Tell me a joke" "Do you like pizza?"; do
    echo "Sam> $q"
    printf 'Robin> '
    "$BIN/likeme" chat "$LIKEME_HOME/runs/robin" --message "$q" --seed 1 --max-new-tokens 40
    echo
done
echo
echo "Loss curve: $LIKEME_HOME/runs/robin/plots/loss.png"
echo "More: likeme eval $LIKEME_HOME/runs/robin --data \"$LATER\" --as Robin"
