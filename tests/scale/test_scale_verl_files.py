"""The verl launch files: dataset conversion, run files, and (where verl and Hydra are importable)
the composition of research_grpo.yaml on verl's own trainer config."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml
from datasets import Dataset

from research_rl.config import ConfigError
from research_rl.profiles import PROFILES
from research_rl.questions import Question, write_questions
from research_rl.scale.verl import launch, prepare
from research_rl.scale.verl.agent_loop import AGENT_NAME, load_settings, question_from_row

ROOT = Path(__file__).resolve().parents[2]
QUESTIONS = [
    Question("a1", "Who wrote Dune?", ["Frank Herbert", "Herbert"]),
    Question("a2", "What is the capital of France? " + "Explain at length. " * 40, ["Paris"]),
]


def test_parquet_rows_carry_what_verl_and_the_loop_read(tmp_path):
    write_questions(QUESTIONS, tmp_path / "q.jsonl")
    assert prepare.main(["--train", str(tmp_path / "q.jsonl"), "--out", str(tmp_path / "out")]) == 0
    rows = Dataset.from_parquet(str(tmp_path / "out" / "train.parquet")).to_list()
    assert len(rows) == 2
    row = rows[0]
    assert row["agent_name"] == AGENT_NAME
    assert row["prompt"] == [{"role": "user", "content": "Who wrote Dune?"}]
    assert row["reward_model"] == {"style": "rule", "ground_truth": ["Frank Herbert", "Herbert"]}
    assert row["extra_info"]["question_id"] == "a1" and row["extra_info"]["index"] == 0
    # the agent loop reads the question back from the row as verl hands it over
    q = question_from_row({**row, "raw_prompt": row["prompt"]})
    assert (q.id, q.question, q.golden_answers) == (
        "a1",
        "Who wrote Dune?",
        ["Frank Herbert", "Herbert"],
    )


def test_overlong_prompts_are_dropped_with_the_training_template(tmp_path, capsys):
    write_questions(QUESTIONS, tmp_path / "q.jsonl")
    launch.write_run_files(tmp_path / "run", "http://r:8000")
    settings = tmp_path / "run" / "settings.yaml"
    data = yaml.safe_load(settings.read_text())
    data["rollout"].update(
        template_path=str(ROOT / "examples/tiny/prompt.txt"), max_prompt_tokens=200
    )
    settings.write_text(yaml.safe_dump(data))
    prepare.main(
        [
            "--train",
            str(tmp_path / "q.jsonl"),
            "--out",
            str(tmp_path / "out"),
            "--tokenizer",
            str(ROOT / "examples/tiny/model"),
            "--settings",
            str(settings),
        ]
    )
    rows = Dataset.from_parquet(str(tmp_path / "out" / "train.parquet")).to_list()
    assert [r["extra_info"]["question_id"] for r in rows] == ["a1"]
    assert "1 dropped: prompt too long" in capsys.readouterr().out


def test_run_files_are_validated_and_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    overrides = launch.write_run_files(Path("run"), "http://retriever:8000")
    run = (tmp_path / "run").resolve()
    settings = load_settings(str(run / "settings.yaml"))
    assert settings.retriever.url == "http://retriever:8000" and settings.retriever.index is None
    assert (settings.rollout.max_response_tokens, settings.rollout.topk) == (8192, 5)
    # ReSearch's protocol: no search cap, whole passages in ReSearch's block, stop at </search>
    assert settings.rollout.effective() == PROFILES["research"]
    [entry] = yaml.safe_load((run / "agent_loops.yaml").read_text())
    assert entry == {
        "name": AGENT_NAME,
        "settings": str(run / "settings.yaml"),
        "_target_": "research_rl.scale.verl.agent_loop.ReSearchAgentLoop",
    }
    assert (
        f"actor_rollout_ref.rollout.agent.agent_loop_config_path={run / 'agent_loops.yaml'}"
        in overrides
    )
    assert "data.max_response_length=8192" in overrides
    reward_path = next(o for o in overrides if o.startswith("reward.custom_reward_function.path="))
    assert Path(reward_path.split("=", 1)[1]).is_file()


def test_research_grpo_holds_researchs_entropy_bonus():
    """verl's own default moved to 0; ReSearch trains with 0.001 (loss = pg - 0.001 x entropy)."""
    cfg = yaml.safe_load(launch.HYDRA_CONFIG.read_text())
    actor = cfg["actor_rollout_ref"]["actor"]
    assert actor["entropy_coeff"] == 0.001
    assert (actor["use_kl_loss"], actor["kl_loss_coef"]) == (True, 0.001)


def test_user_settings_get_the_retriever_url_and_bad_keys_fail(tmp_path):
    good = tmp_path / "mine.yaml"
    good.write_text("rollout: {max_searches: 2}\nretriever: {index: /somewhere}\n")
    launch.write_run_files(tmp_path / "run", "http://r:1", str(good))
    settings = load_settings(str((tmp_path / "run" / "settings.yaml").resolve()))
    assert settings.rollout.max_searches == 2 and settings.retriever.url == "http://r:1"
    bad = tmp_path / "bad.yaml"
    bad.write_text("rollout: {max_serches: 2}\n")
    with pytest.raises(ConfigError, match="bad.yaml: unknown key 'rollout.max_serches'"):
        launch.write_run_files(tmp_path / "run2", "http://r:1", str(bad))


@pytest.mark.skipif(
    importlib.util.find_spec("verl") is None or importlib.util.find_spec("hydra") is None,
    reason="verl and Hydra are not installed in this environment",
)
def test_research_grpo_composes_on_verls_trainer_config(tmp_path):
    from hydra import compose, initialize_config_dir
    from verl.utils.config import omega_conf_to_dataclass

    overrides = launch.write_run_files(tmp_path / "run", "http://r:8000")
    overrides += [
        "actor_rollout_ref.model.path=/m",
        "data.train_files=/t.parquet",
        "data.val_files=/v.parquet",
        "trainer.nnodes=4",
    ]
    with initialize_config_dir(config_dir=str(launch.HYDRA_CONFIG.parent), version_base=None):
        cfg = compose(config_name="research_grpo", overrides=overrides)
    rollout = omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout)
    actor = omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)
    assert (rollout.n, rollout.agent.default_agent_loop) == (5, AGENT_NAME)
    assert (rollout.prompt_length, rollout.response_length) == (1024, 8192)
    assert (actor.use_kl_loss, actor.kl_loss_type, actor.kl_loss_coef) == (
        True,
        "low_var_kl",
        0.001,
    )
    assert (actor.clip_ratio, actor.loss_agg_mode) == (0.2, "token-mean")
    assert actor.entropy_coeff == 0.001
    assert cfg.algorithm.adv_estimator == "grpo" and cfg.trainer.nnodes == 4
