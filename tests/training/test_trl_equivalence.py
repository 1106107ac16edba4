"""TRL's GRPO loss against the reference objective (research_rl.grpo), on one fixed batch.

The batch comes through the real path: the adapter's rollout function runs the core's
RolloutEngine (a scripted backend, the real BM25 index) inside TRL's
``_generate_and_score_completions``, so the inserted ``<result>`` tokens reach the loss only
through TRL's handling of ``env_mask``. If a TRL upgrade changes that handling (renames the key,
stops multiplying it into the loss mask, changes the aggregation, the entropy bonus or the vLLM
importance-sampling switch) these tests fail.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from research_rl.backends.scripted import ScriptedBackend
from research_rl.grpo import group_advantages, grpo_loss, token_entropy
from research_rl.retrieval.base import RetrieverError
from research_rl.training.config import TrainConfig
from research_rl.training.run import build_trainer

TINY = Path(__file__).resolve().parents[2] / "examples" / "tiny"
GROUP = 3
ENTROPY_COEF = 0.5  # far above the paper's 0.001, so the term weighs in the comparison

# Three behaviours per question: search then answer right, search then answer wrong, answer with
# no search. The golden answer is filled in per question.
SCRIPTS = [
    [
        "<think> find the city </think> <search> {person} born </search>",
        " <answer> \\boxed{{{gold}}} </answer>",
    ],
    [
        "<think> look it up </think> <search> {person} </search>",
        " <answer> \\boxed{{Nowhere}} </answer>",
    ],
    ["<answer> \\boxed{{{gold}}} maybe </answer>"],
]


def _config(tmp_path: Path, beta: float, **grpo) -> TrainConfig:
    return TrainConfig.model_validate(
        {
            "model": {"path": str(TINY / "model")},
            "data": {"train": str(TINY / "train.jsonl"), "max_train_questions": 2},
            "retriever": {"index": str(TINY / "index")},
            "rollout": {
                "template": "base",
                "template_path": str(TINY / "prompt.txt"),
                "max_response_tokens": 160,
                "max_passage_tokens": 12,
                "topk": 2,
            },
            "grpo": {
                "group_size": GROUP,
                "questions_per_step": 2,
                "beta": beta,
                "seed": 3,
                **grpo,
            },
            "run": {"output_dir": str(tmp_path)},
        }
    )


def _trainer(tmp_path: Path, beta: float, scripts=SCRIPTS, retriever=None, **grpo):
    from research_rl.questions import read_questions

    cfg = _config(tmp_path, beta, **grpo)
    questions = read_questions(cfg.data.train, limit=2)
    per_question = {}
    for q in questions:
        person = q.metadata["subject"]
        per_question[q.question] = [
            [seg.format(person=person, gold=q.golden_answers[0]) for seg in s] for s in scripts
        ]

    def factory(trainer, model):
        return backend

    trainer, rollout_func, _ = build_trainer(
        cfg, tmp_path, backend_factory=factory, retriever=retriever
    )
    backend = ScriptedBackend(trainer.processing_class, scripts=per_question, logprob=-1.0)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop, which we bypass
    rows = [
        {"prompt": q.id, "golden_answers": q.golden_answers}
        for q in questions
        for _ in range(GROUP)
    ]
    return trainer, rollout_func, rows


def _reference(model, inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-probs of the completion tokens, entropy of each completion position), temperature 1."""
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    attention = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    logits = model(input_ids=ids, attention_mask=attention).logits
    n = inputs["completion_ids"].size(1)
    completion_logits = logits[:, -n - 1 : -1].float()
    logp = torch.log_softmax(completion_logits, dim=-1)
    token_logp = logp.gather(-1, inputs["completion_ids"].unsqueeze(-1)).squeeze(-1)
    return token_logp, token_entropy(completion_logits)


def _reference_logps(model, inputs) -> torch.Tensor:
    return _reference(model, inputs)[0]


def _grads(model) -> list[torch.Tensor]:
    out = [p.grad.detach().clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad(set_to_none=True)
    return out


def _batch(trainer, rollout_func, rows):
    """The batch TRL builds from the rollouts, off-policy, with the policy moved off the
    reference."""
    # Move the policy away from the frozen reference so the KL term and its gradient are non-zero.
    torch.manual_seed(0)
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.add_(torch.randn_like(p) * 0.03)
    inputs = trainer._generate_and_score_completions(rows)
    trajectories = rollout_func.last.trajectories
    # An off-policy batch, so the ratio and the clip are exercised: old log-probs moved by +-0.3.
    g = torch.Generator().manual_seed(1)
    shape = inputs["completion_ids"].shape
    with torch.no_grad():
        base = _reference_logps(trainer.model, inputs)
    inputs["old_per_token_logps"] = base + (torch.rand(shape, generator=g) - 0.5) * 0.6
    return trainer, inputs, trajectories


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("equiv")
    return _batch(*_trainer(tmp, beta=0.2, entropy_coef=ENTROPY_COEF))


def test_the_mask_reaches_trl_as_tool_mask(setup):
    trainer, inputs, trajectories = setup
    assert "tool_mask" in inputs, "TRL no longer turns env_mask into tool_mask"
    tool_mask = inputs["tool_mask"]
    searched = [t for t in trajectories if t.num_searches]
    assert searched and all(0 in t.loss_mask for t in searched)
    for i, t in enumerate(trajectories):
        n = len(t.completion_ids)
        assert inputs["completion_ids"][i, :n].tolist() == t.completion_ids
        assert tool_mask[i, :n].tolist() == t.loss_mask
        assert inputs["completion_mask"][i, :n].sum().item() == n
    # the advantages TRL computed are the reference's group normalisation of the core's rewards
    rewards = torch.tensor([t.reward.value for t in trajectories])
    assert rewards.view(-1, GROUP).std(dim=1).min() > 0
    assert torch.allclose(inputs["advantages"], group_advantages(rewards, GROUP), atol=1e-6)


def test_trl_loss_and_gradients_match_the_reference(setup):
    trainer, inputs, _ = setup
    model = trainer.model
    model.zero_grad(set_to_none=True)
    trl_loss = trainer.compute_loss(model, inputs)
    trl_loss.backward()
    trl_grads = _grads(model)

    mask = inputs["completion_mask"] * inputs["tool_mask"]
    logp, entropy = _reference(model, inputs)
    ref = grpo_loss(
        logp,
        inputs["old_per_token_logps"],
        inputs["ref_per_token_logps"],
        inputs["advantages"],
        mask,
        clip_eps=0.2,
        beta=0.2,
        entropy=entropy,
        entropy_coef=ENTROPY_COEF,
    )
    ref.loss.backward()
    ref_grads = _grads(model)

    # every term is live: the KL, the clip, and an entropy bonus that moves the loss
    assert ref.kl.item() > 1e-4 and 0 < ref.clip_fraction.item() < 1
    assert ENTROPY_COEF * ref.entropy.item() > 0.1 * abs(ref.loss.item()) > 0
    assert trl_loss.item() == pytest.approx(ref.loss.item(), rel=1e-4, abs=1e-6)
    assert len(trl_grads) == len(ref_grads) > 0
    for a, b in zip(trl_grads, ref_grads, strict=True):
        # float32 with different summation orders (TRL's fused, tiled LM head): the tolerance
        # scales with the tensor's largest gradient
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))


def test_masked_log_probs_change_neither_trl_loss_nor_gradients(setup):
    trainer, inputs, _ = setup
    model = trainer.model
    hidden = (inputs["completion_mask"] * inputs["tool_mask"]) == 0
    assert hidden.any()

    def loss_and_grads(batch):
        model.zero_grad(set_to_none=True)
        loss = trainer.compute_loss(model, batch)
        loss.backward()
        return loss.detach(), _grads(model)

    base_loss, base_grads = loss_and_grads(inputs)
    g = torch.Generator().manual_seed(2)
    for key in ("old_per_token_logps", "ref_per_token_logps"):
        noise = torch.randn(inputs[key].shape, generator=g) * 3
        hidden_only = {**inputs, key: inputs[key] + noise * hidden}
        loss, grads = loss_and_grads(hidden_only)
        assert torch.allclose(loss, base_loss, rtol=1e-6, atol=1e-8), key
        for a, b in zip(grads, base_grads, strict=True):
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-8), key
        # the same noise on model tokens does move the loss: the check above can fail
        visible = {**inputs, key: inputs[key] + noise * ~hidden}
        assert not torch.allclose(loss_and_grads(visible)[0], base_loss), key


def test_the_entropy_bonus_is_the_reference_one_minus_coef_times_entropy(setup):
    """Switching TRL's bonus off moves its loss by exactly the reference's entropy term."""
    trainer, inputs, _ = setup
    model = trainer.model
    with torch.no_grad():
        with_bonus = trainer.compute_loss(model, inputs).item()
        logp, entropy = _reference(model, inputs)
    mask = inputs["completion_mask"] * inputs["tool_mask"]
    mean_entropy = ((entropy * mask).sum() / mask.sum()).item()
    trainer.entropy_coef, trainer._entropy_bonus_enabled = 0.0, False
    try:
        with torch.no_grad():
            without = trainer.compute_loss(model, inputs).item()
    finally:
        trainer.entropy_coef, trainer._entropy_bonus_enabled = ENTROPY_COEF, True
    assert with_bonus - without == pytest.approx(-ENTROPY_COEF * mean_entropy, rel=1e-4)


def test_no_vllm_importance_sampling_correction_under_our_arguments(setup):
    """With the arguments grpo_args gives TRL, its vLLM path leaves the loss uncorrected: an
    importance-sampling ratio in the batch changes nothing (and would, were it switched on)."""
    trainer, inputs, _ = setup
    assert trainer.args.vllm_importance_sampling_correction is False  # set by grpo_args
    model = trainer.model
    ratio = 0.5 + torch.rand(
        inputs["completion_ids"].shape, generator=torch.Generator().manual_seed(4)
    )
    skewed = {**inputs, "importance_sampling_ratio": ratio}
    trainer.use_vllm = True
    try:
        with torch.no_grad():
            trainer.vllm_importance_sampling_correction = (
                trainer.args.vllm_importance_sampling_correction
            )
            plain = trainer.compute_loss(model, inputs).item()
            ours = trainer.compute_loss(model, skewed).item()
            trainer.vllm_importance_sampling_correction = True
            corrected = trainer.compute_loss(model, skewed).item()
    finally:
        trainer.use_vllm, trainer.vllm_importance_sampling_correction = False, False
    assert ours == plain
    assert corrected != pytest.approx(plain, rel=1e-3)


# -- rollouts that failed on the retriever --------------------------------------------------------
class FailingCalls:
    """The real index, except that the given calls (0-based) fail, as a retriever gone down."""

    def __init__(self, inner, fail_calls: set[int]) -> None:
        self.inner, self.fail_calls, self.calls = inner, fail_calls, 0

    def search(self, queries, topk):
        self.calls += 1
        if self.calls - 1 in self.fail_calls:
            raise RetrieverError("retriever at http://retriever:8000/retrieve unreachable")
        return self.inner.search(queries, topk)

    def close(self):
        self.inner.close()


# Script 0 searches twice, and its second search (the second retriever call of the step, which
# fails) ends it; the other two behave as above and survive.
FAULT_SCRIPTS = [
    [
        "<think> find the city </think> <search> {person} born </search>",
        " <think> and the country </think> <search> {person} country </search>",
        " <answer> \\boxed{{{gold}}} </answer>",
    ],
    *SCRIPTS[1:],
]


def _micro_batch_loss_and_grads(trainer, parts):
    model = trainer.model
    model.zero_grad(set_to_none=True)
    saved = trainer.current_gradient_accumulation_steps, trainer.args.steps_per_generation
    trainer.current_gradient_accumulation_steps = trainer.args.steps_per_generation = len(parts)
    try:
        total = sum(trainer.compute_loss(model, p) for p in parts)
        total.backward()
    finally:
        trainer.current_gradient_accumulation_steps, trainer.args.steps_per_generation = saved
    return total.item(), _grads(model)


def _assert_same(a, b):
    assert a[0] == pytest.approx(b[0], rel=1e-5, abs=1e-7)
    for x, y in zip(a[1], b[1], strict=True):
        assert torch.allclose(x, y, rtol=1e-4, atol=1e-5 * float(y.abs().max()))


def test_regrouped_micro_batches_give_the_whole_batch_loss_and_gradients(setup):
    """Without the entropy bonus the loss does not depend on which rows share a micro-batch: the
    trainer's micro-batches (grouped by length, cut to their own longest row) sum to the loss and
    gradients of the whole padded batch."""
    from research_rl.training.micro_batches import can_regroup, partition_free, regroup, rotary

    trainer, inputs, _ = setup
    assert can_regroup(inputs), sorted(inputs)  # TRL's batch keys are still the known ones
    assert rotary(trainer.model.config) and partition_free(trainer.loss_type)
    trainer.entropy_coef, trainer._entropy_bonus_enabled = 0.0, False
    try:
        whole = _micro_batch_loss_and_grads(trainer, [inputs])
        halves = [{k: v if v.ndim == 0 else v[i::2] for k, v in inputs.items()} for i in (0, 1)]
        parts = regroup(halves)
        width = inputs["prompt_ids"].shape[1] + inputs["completion_ids"].shape[1]
        assert min(p["prompt_ids"].shape[1] + p["completion_ids"].shape[1] for p in parts) < width
        _assert_same(_micro_batch_loss_and_grads(trainer, parts), whole)
    finally:
        trainer.entropy_coef, trainer._entropy_bonus_enabled = ENTROPY_COEF, True


def test_with_the_entropy_bonus_regrouped_micro_batches_keep_trls_loss(setup):
    """TRL's entropy bonus is a token mean within each of its micro-batches. Regrouped rows carry
    the weight of the micro-batch TRL put them in, so the loss, the gradients and the step's mean
    of the logged entropy are TRL's; without the weights regrouping would move them."""
    from research_rl.training.micro_batches import entropy_weights, regroup

    trainer, inputs, _ = setup
    assert trainer._entropy_bonus_enabled and trainer._regroups
    # rows in order: each question's search-right, search-wrong, no-search rollouts
    halves = [{k: v if v.ndim == 0 else v[i : i + 2] for k, v in inputs.items()} for i in (0, 2, 4)]

    def logged_entropy(parts):
        trainer._metrics["train"]["entropy"].clear()
        result = _micro_batch_loss_and_grads(trainer, parts)
        return result, sum(trainer._metrics["train"]["entropy"]) / len(parts)

    stock, stock_entropy = logged_entropy(halves)
    parts = regroup(entropy_weights(halves))
    assert [p["completion_ids"].shape[1] for p in parts] != [
        h["completion_ids"].shape[1] for h in halves
    ]
    regrouped, regrouped_entropy = logged_entropy(parts)
    _assert_same(regrouped, stock)
    assert regrouped_entropy == pytest.approx(stock_entropy, rel=1e-5)
    moved = _micro_batch_loss_and_grads(trainer, regroup(halves))
    assert moved[0] != pytest.approx(stock[0], rel=1e-5)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    from research_rl.retrieval import RetrieverConfig, make_retriever

    retriever = FailingCalls(make_retriever(RetrieverConfig(index=str(TINY / "index"))), {1})
    tmp = tmp_path_factory.mktemp("faulty")
    trainer, rollout_func, rows = _trainer(
        tmp, 0.2, FAULT_SCRIPTS, retriever, entropy_coef=ENTROPY_COEF
    )
    trainer, inputs, trajectories = _batch(trainer, rollout_func, rows)
    assert retriever.calls == 2
    return trainer, inputs, trajectories


def test_failed_rollouts_are_left_out_of_their_group_statistics(faulty):
    trainer, inputs, trajectories = faulty
    failed = torch.tensor([t.failed for t in trajectories])
    assert failed.tolist() == [True, False, False] * 2  # script 0 of each question
    # no token of a failed rollout reaches the loss, though its tokens are in the batch
    mask = inputs["completion_mask"] * inputs["tool_mask"]
    assert mask[failed].sum() == 0 and inputs["completion_mask"][failed].sum(dim=1).min() > 0
    assert mask[~failed].sum(dim=1).min() > 0
    assert torch.all(inputs["advantages"][failed] == 0)
    rewards = torch.tensor([t.reward.value if t.reward else float("nan") for t in trajectories])
    survivors = rewards.view(-1, GROUP)[:, 1:]
    assert survivors.std(dim=1).min() > 0  # each group keeps a signal to normalise
    # the advantages of the survivors are the plain reference over the survivors alone
    for g, left in enumerate(survivors):
        rows = [i for i in range(g * GROUP, (g + 1) * GROUP) if not failed[i]]
        alone = group_advantages(left, len(left))
        assert torch.allclose(inputs["advantages"][rows], alone, atol=1e-6)
    assert torch.allclose(inputs["advantages"], group_advantages(rewards, GROUP), atol=1e-6)
    # and TRL's logged reward mean is over the survivors
    assert trainer._metrics["train"]["reward"][-1] == pytest.approx(survivors.mean().item())


def test_trl_loss_with_failed_rollouts_is_the_reference_loss_without_them(faulty):
    trainer, inputs, trajectories = faulty
    model = trainer.model
    model.zero_grad(set_to_none=True)
    trl_loss = trainer.compute_loss(model, inputs)
    trl_loss.backward()
    trl_grads = _grads(model)

    # The reference sees the surviving rows only, as if the failed rollouts had never run.
    keep = torch.tensor([not t.failed for t in trajectories])
    sub = {k: v[keep] for k, v in inputs.items() if isinstance(v, torch.Tensor) and v.dim() > 0}
    logp, entropy = _reference(model, sub)
    ref = grpo_loss(
        logp,
        sub["old_per_token_logps"],
        sub["ref_per_token_logps"],
        sub["advantages"],
        sub["completion_mask"] * sub["tool_mask"],
        clip_eps=0.2,
        beta=0.2,
        entropy=entropy,
        entropy_coef=ENTROPY_COEF,
    )
    ref.loss.backward()
    ref_grads = _grads(model)
    assert ref.kl.item() > 1e-4 and abs(ref.policy_loss.item()) > 1e-4
    assert trl_loss.item() == pytest.approx(ref.loss.item(), rel=1e-4, abs=1e-6)
    assert len(trl_grads) == len(ref_grads) > 0
    for a, b in zip(trl_grads, ref_grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))


@pytest.mark.parametrize("mode", ["colocate", "server"])
def test_vllm_mode_arguments_reach_trl(tmp_path, mode):
    from research_rl.training.config import grpo_args

    cfg = TrainConfig.model_validate(
        {
            "model": {"path": "m"},
            "data": {"train": "t.jsonl"},
            "retriever": {"index": "i"},
            "generation": {
                "backend": "vllm",
                "vllm_mode": mode,
                "vllm_server_url": "http://gen:8001",
                "vllm_gpu_memory_utilization": 0.45,
            },
        }
    )
    args = grpo_args(cfg, tmp_path)
    assert (args.use_vllm, args.vllm_mode) == (True, mode)
    assert args.vllm_server_base_url == ("http://gen:8001" if mode == "server" else None)
    assert args.vllm_gpu_memory_utilization == 0.45 and args.vllm_tensor_parallel_size == 1
    assert args.vllm_importance_sampling_correction is False  # ReSearch has none; TRL's is on
    assert args.entropy_coef == 1e-3 and args.use_adaptive_entropy is False
    # both are config values a user may change
    cfg.generation.vllm_importance_sampling_correction = True
    cfg.grpo.entropy_coef = 0.0
    args = grpo_args(cfg, tmp_path)
    assert args.vllm_importance_sampling_correction is True and args.entropy_coef == 0.0


def test_paper_defaults_reach_trl(tmp_path):
    from research_rl.training.config import grpo_args

    cfg = TrainConfig.model_validate(
        {
            "model": {"path": "m"},
            "data": {"train": "t.jsonl"},
            "retriever": {"index": "i"},
        }
    )
    args = grpo_args(cfg, tmp_path)
    assert args.num_generations == 5
    assert args.beta == 1e-3
    assert args.use_bias_correction_kl is False
    assert args.epsilon == 0.2 and args.epsilon_high is None
    assert args.loss_type == "dapo"  # token-mean over every unmasked token of the batch
    assert args.scale_rewards == "group"
    assert args.learning_rate == 1e-6
    assert args.temperature == 1.0
    assert args.num_iterations == 1
    assert args.entropy_coef == 1e-3  # verl's default, which ReSearch trains with (TRL's is 0)
    assert args.use_vllm is False and args.vllm_importance_sampling_correction is False
    assert args.max_completion_length == 8192  # the research profile's budget
    assert args.per_device_train_batch_size * args.gradient_accumulation_steps == 256 * 5
