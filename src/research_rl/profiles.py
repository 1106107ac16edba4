"""Protocol profiles: named sets of rollout, reward and template choices (``rollout.profile``).

- ``research`` (the default): ReSearch's released training code. Generation stops at
  ``</search>`` and end of sequence only, so the model must end its answer with EOS itself; no
  search cap (only the response budget bounds a rollout); the result block is a space,
  ``<result>``, a newline, the hits' ``contents`` separated by blank lines, a newline,
  ``</result>``, no per-passage cut; ReSearch's format rules and boxed-answer reading; prompts that
  invite searching *during* thinking.
- ``strict``: research-rl's earlier protocol. Generation also stops at ``</answer>``; at most 5
  searches; Search-R1's ``Doc i (Title: …) text`` result lines, each passage cut to 200 tokens;
  stricter format rules (think tags alternate, whole search/result groups).

A rollout config's own key (``stop_at_answer``, ``max_searches``, ``result_format``,
``max_passage_tokens``, ``max_response_tokens``) overrides its profile's value for that point;
the reward rules and the built-in templates always follow the profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from research_rl import tags

ProfileName = Literal["research", "strict"]
ResultFormat = Literal["research", "search-r1"]


@dataclass(frozen=True)
class Profile:
    name: ProfileName  # also the reward rules and the built-in template set
    stop_at_answer: bool  # end the rollout at </answer> (else only at EOS or the budget)
    max_searches: int | None  # executed searches per rollout; None = no cap
    result_format: ResultFormat
    max_passage_tokens: int | None  # each passage cut to this many tokens; None = no cut
    max_response_tokens: int  # the completion, inserted results included

    @property
    def stop_strings(self) -> tuple[str, ...]:
        if self.stop_at_answer:
            return (tags.SEARCH_CLOSE, tags.ANSWER_CLOSE)
        return (tags.SEARCH_CLOSE,)


PROFILES: dict[str, Profile] = {
    "research": Profile(
        name="research",
        stop_at_answer=False,
        max_searches=None,
        result_format="research",
        max_passage_tokens=None,
        max_response_tokens=8192,
    ),
    "strict": Profile(
        name="strict",
        stop_at_answer=True,
        max_searches=5,
        result_format="search-r1",
        max_passage_tokens=200,
        max_response_tokens=1024,
    ),
}
