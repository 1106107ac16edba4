"""One rollout's record: what the trainer, the evaluator and the report read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from research_rl.reward import Reward

# A search the retriever could not answer (after its own bounded retries) ends the rollout
# unscored: it is left out of the loss, the group statistics and the answer metrics.
RETRIEVER_ERROR = "retriever_error"

# Why a rollout ended: the model answered (profiles that stop at </answer>), emitted
# end-of-sequence, ran out of its token budget, hit the search limit, or lost a search to a
# retriever failure.
FINISH_REASONS = ("answer", "eos", "length", "max_searches", RETRIEVER_ERROR)


@dataclass
class Trajectory:
    question_id: str
    question: str
    golden_answers: list[str]
    sample_index: int  # position within the question's group of n rollouts
    prompt_ids: list[int]
    prompt_text: str = ""
    completion_ids: list[int] = field(default_factory=list)
    # 1 for tokens the model generated, 0 for tokens the system inserted (<result> spans).
    loss_mask: list[int] = field(default_factory=list)
    # Generation log-probs aligned with completion_ids (0.0 on inserted tokens); None when the
    # backend gives none.
    logprobs: list[float] | None = None
    text: str = ""  # the completion as text: model segments and inserted results, in order
    num_searches: int = 0
    search_queries: list[str] = field(default_factory=list)
    finish_reason: str | None = None  # one of FINISH_REASONS once finished
    reward: Reward | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # The protocol profile it ran under (research_rl.profiles): it decides how it is scored.
    profile: str = "research"
    error: str | None = None  # the retriever's message when finish_reason is "retriever_error"

    @property
    def failed(self) -> bool:
        """It lost a search to the retriever: it has no reward and must not be trained on."""
        return self.finish_reason == RETRIEVER_ERROR

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"

    @property
    def num_model_tokens(self) -> int:
        return sum(self.loss_mask)

    def to_json(self, with_ids: bool = True) -> dict[str, Any]:
        row: dict[str, Any] = {
            "question_id": self.question_id,
            "question": self.question,
            "golden_answers": self.golden_answers,
            "sample_index": self.sample_index,
            "prompt_text": self.prompt_text,
            "text": self.text,
            "num_searches": self.num_searches,
            "search_queries": self.search_queries,
            "finish_reason": self.finish_reason,
            "num_model_tokens": self.num_model_tokens,
            "reward": self.reward.to_json() if self.reward else None,
            "metadata": self.metadata,
            "profile": self.profile,
            "error": self.error,
        }
        if with_ids:
            row.update(
                prompt_ids=self.prompt_ids,
                completion_ids=self.completion_ids,
                loss_mask=self.loss_mask,
                logprobs=self.logprobs,
            )
        return row

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Trajectory:
        reward = Reward(**row["reward"]) if row.get("reward") else None
        return cls(
            question_id=row["question_id"],
            question=row["question"],
            golden_answers=row["golden_answers"],
            sample_index=row.get("sample_index", 0),
            prompt_ids=row.get("prompt_ids", []),
            prompt_text=row.get("prompt_text", ""),
            completion_ids=row.get("completion_ids", []),
            loss_mask=row.get("loss_mask", []),
            logprobs=row.get("logprobs"),
            text=row.get("text", ""),
            num_searches=row.get("num_searches", 0),
            search_queries=row.get("search_queries", []),
            finish_reason=row.get("finish_reason"),
            reward=reward,
            metadata=row.get("metadata", {}),
            # Rows written before profiles existed followed what is now the strict profile.
            profile=row.get("profile", "strict"),
            error=row.get("error"),
        )
