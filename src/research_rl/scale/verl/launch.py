"""Write a verl run's files and print the Hydra overrides that point verl at them.

    python -m research_rl.scale.verl.launch --run-dir runs/verl --retriever-url http://host:8000 \\
        [--settings my_settings.yaml]

writes ``<run-dir>/settings.yaml`` (the agent loop's :class:`VerlLoopSettings`: the paper's rollout
values unless ``--settings`` gives others, with the retriever URL) and
``<run-dir>/agent_loops.yaml`` (the registry entry verl instantiates), both validated, with absolute
paths since Ray workers run elsewhere; then prints one override per line for
``verl.trainer.main_ppo`` (``launch.sh`` reads them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from research_rl.config import dump_config, load_config
from research_rl.retrieval.config import RetrieverConfig
from research_rl.rollout import RolloutConfig
from research_rl.scale.verl import reward
from research_rl.scale.verl.agent_loop import AGENT_NAME, ReSearchAgentLoop, VerlLoopSettings

HYDRA_CONFIG = Path(__file__).with_name("research_grpo.yaml")


def paper_settings(retriever_url: str) -> VerlLoopSettings:
    """ReSearch's rollout: the research profile (stop at ``</search>`` and EOS only, no search
    cap, ReSearch's result block), base template, top-5 passages, 8192 response tokens."""
    return VerlLoopSettings(
        rollout=RolloutConfig(
            profile="research",
            template="base",
            topk=5,
            max_response_tokens=8192,
            max_prompt_tokens=1024,
            chunk_tokens=0,  # one server call per turn (the agent loop enforces it)
        ),
        retriever=RetrieverConfig(url=retriever_url, timeout_s=60),
    )


def write_run_files(
    run_dir: Path, retriever_url: str, settings_file: str | None = None
) -> list[str]:
    """Write the settings and agent-loop files; return the Hydra overrides for them."""
    run_dir = run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    if settings_file is None:
        settings = paper_settings(retriever_url)
    else:
        settings = load_config(
            settings_file,
            VerlLoopSettings,
            {"retriever.url": retriever_url, "retriever.index": None},
        )
    settings_path = run_dir / "settings.yaml"
    dump_config(settings, settings_path)
    loops_path = run_dir / "agent_loops.yaml"
    target = f"{ReSearchAgentLoop.__module__}.{ReSearchAgentLoop.__qualname__}"
    loops_path.write_text(
        yaml.safe_dump([{"name": AGENT_NAME, "_target_": target, "settings": str(settings_path)}]),
        encoding="utf-8",
    )
    rollout = settings.rollout
    return [
        f"actor_rollout_ref.rollout.agent.agent_loop_config_path={loops_path}",
        f"actor_rollout_ref.rollout.agent.default_agent_loop={AGENT_NAME}",
        f"reward.custom_reward_function.path={Path(reward.__file__).resolve()}",
        "reward.custom_reward_function.name=compute_score",
        # verl's lengths must hold the rollout engine's budgets
        f"data.max_prompt_length={rollout.max_prompt_tokens}",
        f"data.max_response_length={rollout.effective().max_response_tokens}",
        f"trainer.default_local_dir={run_dir / 'checkpoints'}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--retriever-url", required=True, help="`research serve` base URL")
    parser.add_argument("--settings", help="agent loop settings YAML (default: the paper's)")
    args = parser.parse_args(argv)
    for line in write_run_files(Path(args.run_dir), args.retriever_url, args.settings):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
