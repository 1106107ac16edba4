"""The rule reward (the ReSearch paper's): F1 of the boxed answer, 0.1 for a valid format, else 0.

``score(response, golden_answers, truncated=False) -> Reward``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Reward:
    value: float
    f1: float
    em: float
    valid_format: bool
    reason: str

    def to_json(self) -> dict:
        return asdict(self)


def score(response: str, golden_answers: list[str], truncated: bool = False) -> Reward:
    raise NotImplementedError("arrives with the core issue")
