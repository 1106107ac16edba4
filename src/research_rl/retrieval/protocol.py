"""The wire protocol of the retrieval service: request parsing with field aliases and limits, and
the response envelopes each family of clients expects.

Two families of clients exist in the wild:

- Search-R1 style: ``POST /retrieve`` with ``{"queries", "topk", "return_scores"}``, answered
  ``{"result": [[hit, ...], ...]}``.
- FlashRAG style, which ReSearch's rollout client speaks: ``POST /search`` (one query) and
  ``POST /batch_search`` (ReSearch sends ``{"query": [...], "top_n": 5}`` and reads each hit's
  ``contents``) with ``{"query", "top_n", "return_score"}``, answered with bare lists
  (``[docs, scores]`` with scores).

Every endpoint accepts every spelling of each field; each keeps its own response envelope.
Requests are parsed by hand rather than by a pydantic body model so each rejection says exactly
what was wrong, in the words the client used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from research_rl.retrieval.base import Hit
from research_rl.retrieval.config import ServerConfig

Endpoint = Literal["retrieve", "search", "batch_search"]

QUERY_FIELDS = ("query", "queries")
TOPK_FIELDS = ("topk", "top_k", "top_n", "k")
SCORE_FIELDS = ("return_scores", "return_score")


class BadRequest(ValueError):
    """A request the server refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SearchRequest:
    queries: list[str]
    topk: int
    return_scores: bool


def _one_of(body: dict[str, Any], names: tuple[str, ...]) -> tuple[str, Any] | None:
    """The value given under any of ``names``; several spellings must agree."""
    given = [(n, body[n]) for n in names if n in body]
    if not given:
        return None
    first_name, first = given[0]
    for name, value in given[1:]:
        if value != first or type(value) is not type(first):  # 1 == True == 1.0 in Python
            raise BadRequest(
                f"conflicting fields: '{first_name}' is {first!r} but '{name}' is {value!r}"
            )
    return given[0]


def parse_request(raw: bytes, endpoint: Endpoint, limits: ServerConfig) -> SearchRequest:
    if not raw.strip():
        raise BadRequest("empty request body; expected a JSON object", status=400)
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        detail = (
            f"{err.msg} at line {err.lineno} column {err.colno}"
            if isinstance(err, json.JSONDecodeError)
            else "not UTF-8"
        )
        raise BadRequest(f"malformed JSON: {detail}", status=400) from None
    if not isinstance(body, dict):
        raise BadRequest(f"expected a JSON object, got {_json_type(body)}")

    found = _one_of(body, QUERY_FIELDS)
    if found is None:
        raise BadRequest("missing field 'query' (or 'queries'): a string or a list of strings")
    field, value = found
    if isinstance(value, str):
        queries = [value]
    elif isinstance(value, list):
        queries = value
        for i, q in enumerate(queries):
            if not isinstance(q, str):
                raise BadRequest(f"'{field}[{i}]' must be a string, got {_json_type(q)}")
    else:
        raise BadRequest(
            f"'{field}' must be a string or a list of strings, got {_json_type(value)}"
        )
    if endpoint == "search" and len(queries) > 1:
        raise BadRequest(
            f"/search takes one query, got {len(queries)}; use /batch_search or /retrieve"
        )
    if len(queries) > limits.max_queries:
        raise BadRequest(
            f"too many queries: {len(queries)} in one request, the maximum is {limits.max_queries}",
            status=413,
        )
    # An empty list and empty or whitespace-only queries are answered (with no hits): training
    # clients send them whenever a turn searched nothing, and a refusal would fail the whole step.
    # Overlong queries are cut, not refused: nothing past the encoder's length changes the answer.
    queries = [q[: limits.max_query_chars] for q in queries]

    topk = limits.default_topk
    found = _one_of(body, TOPK_FIELDS)
    if found is not None:
        field, topk = found
        if not isinstance(topk, int) or isinstance(topk, bool):
            raise BadRequest(f"'{field}' must be an integer, got {_json_type(topk)}")
        if not 1 <= topk <= limits.max_topk:
            raise BadRequest(f"'{field}' must be between 1 and {limits.max_topk}, got {topk}")

    return_scores = False
    found = _one_of(body, SCORE_FIELDS)
    if found is not None:
        field, return_scores = found
        if not isinstance(return_scores, bool):
            raise BadRequest(f"'{field}' must be true or false, got {_json_type(return_scores)}")
    return SearchRequest(queries=queries, topk=topk, return_scores=return_scores)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {json.dumps(value)}"
    if isinstance(value, (int, float)):
        return f"number {value!r}"
    if isinstance(value, str):
        return f"string {value[:40]!r}"
    return "an array" if isinstance(value, list) else "an object"


def _doc(hit: Hit) -> dict[str, str]:
    return {"id": hit.passage.id, "contents": hit.passage.contents}


def render(endpoint: Endpoint, results: list[list[Hit]], return_scores: bool) -> Any:
    """The response body in the envelope ``endpoint``'s clients expect."""
    if endpoint == "retrieve":
        if return_scores:
            rows = [
                [{"document": _doc(h), "score": float(h.score)} for h in row] for row in results
            ]
        else:
            rows = [[_doc(h) for h in row] for row in results]
        return {"result": rows}
    docs = [[_doc(h) for h in row] for row in results]
    scores = [[float(h.score) for h in row] for row in results]
    if endpoint == "search":  # one query, or none: an empty list of documents
        docs, scores = docs[0] if docs else [], scores[0] if scores else []
        return [docs, scores] if return_scores else docs
    return [docs, scores] if return_scores else docs
