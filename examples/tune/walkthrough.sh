#!/usr/bin/env bash
# From feedback to a tuned model, end to end on the embedded model (README: "From feedback to a
# tuned model"): serve, rate replies from an OpenAI client, export, tune, compare, serve the tuned
# model. About 7 minutes on two cores. Run from the repository root after `make install`:
#
#     bash examples/tune/walkthrough.sh [WORK_DIR]      # default runs/walkthrough
#
# The feedback goes to a store of its own under WORK_DIR, so ratings made elsewhere do not
# join this export; the transformers copy of the embedded model is shared ($GENLAB_CACHE).
set -euo pipefail
work=${1:-runs/walkthrough}
port=${PORT:-8765}
genlab=${GENLAB:-.venv/bin/genlab}
python=${PYTHON:-.venv/bin/python}
if [ -e "$work/sft" ]; then
    echo "$work already holds a walkthrough; remove it or pass another WORK_DIR" >&2
    exit 1
fi
mkdir -p "$work"
export GENLAB_HOME="$work/home"

serve() {   # serve one model in the background and wait until it answers
    "$genlab" serve --model "$1" --port "$port" > "$work/serve.log" 2>&1 &
    server=$!
    trap 'kill $server 2> /dev/null || true' EXIT
    for _ in $(seq 120); do
        curl -sf "localhost:$port/health" > /dev/null && return 0
        kill -0 $server 2> /dev/null || { cat "$work/serve.log" >&2; exit 1; }
        sleep 1
    done
    echo "genlab serve did not start in 120 s; see $work/serve.log" >&2
    exit 1
}

echo "== 1. serve the embedded model; a user asks 140 questions and rates every reply"
serve local
"$python" examples/tune/rate_replies.py --base-url "http://127.0.0.1:$port/v1"
kill $server; wait $server 2> /dev/null || true

echo "== 2. export what they said as demonstrations"
"$genlab" feedback stats
"$genlab" feedback export "$work/demos.jsonl" --format sft

echo "== 3. tune on it, measured on 30 questions it never saw"
"$genlab" tune sft "$work/demos.jsonl" -o "$work/sft" --max-steps 40 --max-length 96 \
    --held-out examples/tune/format_dev.yaml

echo "== 4. compare tuned with base: the suite's checks on each, and a pairwise judge"
"$genlab" tune compare local "hf:$work/sft" --suite examples/tune/format_dev.yaml --out "$work/compare"

echo "== 5. serve the tuned model to any OpenAI client"
serve "hf:$work/sft"
curl -s "localhost:$port/v1/chat/completions" -H 'Content-Type: application/json' \
    -d '{"model": "hf:'"$work"'/sft", "messages": [{"role": "user", "content": "What is the capital of Norway?"}], "max_tokens": 16}' \
    | "$python" -c 'import json, sys; print("tuned model:", json.load(sys.stdin)["choices"][0]["message"]["content"])'
