#!/usr/bin/env bash
# Multi-node ReSearch GRPO on verl 0.9.1 + Ray (N nodes x 8 GPUs), in the verl environment
# (docs/scaling.md). Before running it, on every node:
#   head:    ray start --head --port 6379
#   others:  ray start --address <head-ip>:6379
# and somewhere all nodes reach:  research serve --config configs/serve.yaml   (the retriever)
# Then, on the head node:
#   MODEL=Qwen/Qwen2.5-7B DATA_DIR=data/verl/musique RETRIEVER_URL=http://<host>:8000 NNODES=4 \
#       bash src/research_rl/scale/verl/launch.sh [extra Hydra overrides, e.g. trainer.total_epochs=1]
set -euo pipefail

: "${MODEL:?set MODEL to the policy (a local directory or hub id)}"
: "${DATA_DIR:?set DATA_DIR to the directory prepare.py wrote (train.parquet, val.parquet)}"
: "${RETRIEVER_URL:?set RETRIEVER_URL to the research serve URL, reachable from every node}"
NNODES="${NNODES:-1}"
GPUS_PER_NODE="${GPUS_PER_NODE:-8}"
RUN_DIR="${RUN_DIR:-runs/verl-research-grpo}"
SETTINGS="${SETTINGS:-}"            # agent loop settings YAML; empty: the paper's values
PYTHON="${PYTHON:-python3}"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
settings_arg=()
if [[ -n "$SETTINGS" ]]; then settings_arg=(--settings "$SETTINGS"); fi

# settings.yaml and agent_loops.yaml in RUN_DIR; the overrides pointing verl at them
mapfile -t run_overrides < <("$PYTHON" -m research_rl.scale.verl.launch \
    --run-dir "$RUN_DIR" --retriever-url "$RETRIEVER_URL" "${settings_arg[@]}")

exec "$PYTHON" -m verl.trainer.main_ppo \
    --config-path "$here" --config-name research_grpo \
    actor_rollout_ref.model.path="$MODEL" \
    data.train_files="$DATA_DIR/train.parquet" \
    data.val_files="$DATA_DIR/val.parquet" \
    trainer.nnodes="$NNODES" \
    trainer.n_gpus_per_node="$GPUS_PER_NODE" \
    "${run_overrides[@]}" \
    "$@"
