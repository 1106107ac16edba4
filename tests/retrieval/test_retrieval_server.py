"""The HTTP service: both request shapes and their envelopes, field aliases, every bad input."""

from __future__ import annotations

import json

import pytest
import requests
from fastapi.testclient import TestClient

from research_rl.corpus import file_checksum
from research_rl.evaluation.card import retrieval_section
from research_rl.retrieval.config import ServerConfig
from research_rl.retrieval.server import create_app

QUERY = "Where was {} born?"


@pytest.fixture(params=[True, False], ids=["coalesce", "direct"])
def client(request, bm25):
    with TestClient(create_app(bm25, ServerConfig(coalesce=request.param))) as c:
        yield c


def _expected(bm25, queries, k):
    return [
        [(h.passage.id, h.passage.contents, h.score) for h in row]
        for row in bm25.search(queries, k)
    ]


def _names(world, n):
    return [q for q, _ in world.queries[:n]]


def test_retrieve_with_and_without_scores(client, bm25, world):
    queries = _names(world, 3)
    expected = _expected(bm25, queries, 4)
    body = client.post(
        "/retrieve", json={"queries": queries, "topk": 4, "return_scores": True}
    ).json()
    assert list(body) == ["result"]
    got = [
        [(h["document"]["id"], h["document"]["contents"], h["score"]) for h in row]
        for row in body["result"]
    ]
    assert got == expected
    assert all(type(h["score"]) is float for row in body["result"] for h in row)

    body = client.post("/retrieve", json={"queries": queries, "topk": 4}).json()
    assert body["result"] == [[{"id": i, "contents": c} for i, c, _ in row] for row in expected]


def test_search_single_query(client, bm25, world):
    (query,) = _names(world, 1)
    (expected,) = _expected(bm25, [query], 3)
    docs = client.post("/search", json={"query": query, "top_n": 3}).json()
    assert docs == [{"id": i, "contents": c} for i, c, _ in expected]
    docs, scores = client.post(
        "/search", json={"query": query, "top_n": 3, "return_score": True}
    ).json()
    assert [d["id"] for d in docs] == [i for i, _, _ in expected]
    assert scores == [s for _, _, s in expected]


def test_batch_search(client, bm25, world):
    queries = _names(world, 2)
    expected = _expected(bm25, queries, 2)
    lists = client.post("/batch_search", json={"query": queries, "top_n": 2}).json()
    assert [[d["id"] for d in row] for row in lists] == [[i for i, _, _ in row] for row in expected]
    lists, scores = client.post(
        "/batch_search", json={"query": queries, "top_n": 2, "return_score": True}
    ).json()
    assert scores == [[s for _, _, s in row] for row in expected]
    assert len(lists) == 2


@pytest.mark.parametrize("qfield", ["query", "queries"])
@pytest.mark.parametrize("kfield", ["topk", "top_k", "top_n", "k"])
@pytest.mark.parametrize("sfield", ["return_scores", "return_score"])
def test_every_spelling_on_every_endpoint(bm25, world, qfield, kfield, sfield):
    (query,) = _names(world, 1)
    expected_ids = [h.passage.id for h in bm25.search([query], 2)[0]]
    with TestClient(create_app(bm25)) as c:
        for as_list in (False, True):
            q = [query] if as_list else query
            body = {qfield: q, kfield: 2, sfield: True}
            r = c.post("/retrieve", json=body).json()["result"]
            assert [h["document"]["id"] for h in r[0]] == expected_ids
            docs, scores = c.post("/search", json=body).json()
            assert [d["id"] for d in docs] == expected_ids and len(scores) == 2
            lists, scores = c.post("/batch_search", json=body).json()
            assert [d["id"] for d in lists[0]] == expected_ids and len(scores[0]) == 2


def test_defaults_and_equal_duplicate_spellings(bm25, world):
    (query,) = _names(world, 1)
    with TestClient(create_app(bm25, ServerConfig(default_topk=4))) as c:
        r = c.post("/retrieve", json={"query": query}).json()["result"]
        assert len(r[0]) == 4 and "document" not in r[0][0]  # no scores unless asked for
        r = c.post("/retrieve", json={"query": query, "topk": 2, "k": 2}).json()["result"]
        assert len(r[0]) == 2


@pytest.mark.parametrize(
    "body,status,message",
    [
        (b"", 400, "empty request body"),
        (b"{not json", 400, "malformed JSON"),
        (b"\xff\xfe", 400, "malformed JSON"),
        (b"[1, 2]", 422, "expected a JSON object, got an array"),
        (b"{}", 422, "missing field 'query'"),
        (b'{"queries": 5}', 422, "must be a string or a list of strings, got number 5"),
        (b'{"queries": [7]}', 422, "'queries[0]' must be a string, got number 7"),
        (b'{"query": null}', 422, "got null"),
        (b'{"query": "a", "topk": 0}', 422, "'topk' must be between 1 and 100, got 0"),
        (b'{"query": "a", "top_n": -3}', 422, "'top_n' must be between 1 and 100, got -3"),
        (b'{"query": "a", "k": 101}', 422, "'k' must be between 1 and 100, got 101"),
        (b'{"query": "a", "top_k": "5"}', 422, "'top_k' must be an integer, got string '5'"),
        (b'{"query": "a", "topk": 2.5}', 422, "'topk' must be an integer, got number 2.5"),
        (b'{"query": "a", "topk": true}', 422, "'topk' must be an integer, got boolean true"),
        (b'{"query": "a", "return_scores": "yes"}', 422, "'return_scores' must be true or false"),
        (b'{"query": "a", "return_score": 1}', 422, "'return_score' must be true or false"),
        (
            b'{"query": "a", "topk": 2, "top_n": 3}',
            422,
            "conflicting fields: 'topk' is 2 but 'top_n' is 3",
        ),
        (b'{"query": "a", "queries": ["b"]}', 422, "conflicting fields"),
        (b'{"query": "a", "topk": 2, "k": 2.0}', 422, "'topk' is 2 but 'k' is 2.0"),
    ],
)
@pytest.mark.parametrize("endpoint", ["/retrieve", "/search", "/batch_search"])
def test_bad_input_is_a_4xx_with_a_message(client, world, endpoint, body, status, message):
    r = client.post(endpoint, content=body, headers={"content-type": "application/json"})
    assert r.status_code == status
    assert message in r.json()["detail"]
    # ... and the server keeps serving.
    (query,) = _names(world, 1)
    assert client.post(endpoint, json={"query": query, "topk": 1}).status_code == 200


def test_limits_come_from_the_config(bm25):
    cfg = ServerConfig(max_topk=3, max_queries=4)
    with TestClient(create_app(bm25, cfg)) as c:
        r = c.post("/retrieve", json={"queries": ["born"] * 5})
        assert r.status_code == 413 and "5 in one request, the maximum is 4" in r.json()["detail"]
        r = c.post("/retrieve", json={"query": "born", "topk": 4})
        assert r.status_code == 422 and "between 1 and 3" in r.json()["detail"]
        assert c.post("/retrieve", json={"queries": ["born"] * 4, "topk": 3}).status_code == 200


def test_default_limits_cover_what_peer_scripts_send(client, bm25):
    r = client.post("/retrieve", json={"queries": ["born"] * 4097})
    assert r.status_code == 413 and "maximum is 4096" in r.json()["detail"]
    r = client.post("/retrieve", json={"query": "born", "topk": 101})
    assert r.status_code == 422 and "between 1 and 100" in r.json()["detail"]
    body = client.post("/retrieve", json={"queries": ["born", "Arborn"], "topk": 100}).json()
    expected = _expected(bm25, ["born", "Arborn"], 100)
    assert [[d["id"] for d in row] for row in body["result"]] == [
        [i for i, _, _ in row] for row in expected
    ]
    assert len(body["result"][0]) == 100  # every passage says "born"


def test_search_takes_one_query(client):
    r = client.post("/search", json={"query": ["a", "b"]})
    assert r.status_code == 422 and "use /batch_search or /retrieve" in r.json()["detail"]


def test_unknown_route_and_wrong_method(client):
    r = client.get("/nowhere")
    assert r.status_code == 404 and "/retrieve" in r.json()["detail"]
    r = client.get("/retrieve")
    assert r.status_code == 405 and "GET is not allowed on /retrieve" in r.json()["detail"]


@pytest.mark.parametrize("path", ["/health", "/healthz"])
def test_health(client, world, path):
    body = client.get(path).json()
    assert body["status"] == "ok"
    assert (body["kind"], body["num_docs"]) == ("bm25", len(world.queries))


def test_query_without_known_terms_answers_empty_lists(client):
    body = client.post("/retrieve", json={"queries": ["zzqx", "born"], "topk": 2}).json()
    assert body["result"][0] == [] and len(body["result"][1]) == 2
    assert json.loads(json.dumps(body)) == body


def test_an_app_can_be_started_again(bm25):
    app = create_app(bm25)
    for _ in range(2):
        with TestClient(app) as c:
            assert len(c.post("/retrieve", json={"query": "born", "k": 2}).json()["result"][0]) == 2


# What real clients send, as their shipped code sends it (wire format written down by us).


@pytest.mark.parametrize(
    "endpoint,body,empty",
    [
        # Search-R1 calls /retrieve on every turn, also when no rollout searched.
        ("/retrieve", {"queries": [], "topk": 3, "return_scores": True}, {"result": []}),
        ("/retrieve", {"queries": []}, {"result": []}),
        ("/batch_search", {"query": [], "top_n": 5}, []),
        ("/batch_search", {"query": [], "top_n": 5, "return_score": True}, [[], []]),
        ("/search", {"query": [], "top_n": 5}, []),
        ("/search", {"query": [], "top_n": 5, "return_score": True}, [[], []]),
    ],
)
def test_an_empty_query_list_answers_an_empty_result(client, endpoint, body, empty):
    r = client.post(endpoint, json=body)
    assert r.status_code == 200 and r.json() == empty


def test_empty_and_whitespace_queries_get_no_hits_and_the_rest_are_answered(client, bm25, world):
    names = _names(world, 2)
    queries = [names[0], "", "  \n\t ", names[1]]
    body = client.post(
        "/retrieve", json={"queries": queries, "topk": 3, "return_scores": True}
    ).json()
    got = [[(h["document"]["id"], h["score"]) for h in row] for row in body["result"]]
    expected = [[(i, sc) for i, _, sc in row] for row in _expected(bm25, names, 3)]
    assert got == [expected[0], [], [], expected[1]]
    assert client.post("/search", json={"query": " ", "top_n": 5}).json() == []
    lists = client.post("/batch_search", json={"query": ["", names[0]], "top_n": 2}).json()
    assert lists[0] == [] and [d["id"] for d in lists[1]] == [i for i, _ in expected[0][:2]]


def test_an_overlong_query_is_cut_not_refused(bm25, world):
    (query,) = _names(world, 1)
    tail = " Arborn Corvale beekeeper" * 10
    with TestClient(create_app(bm25, ServerConfig(max_query_chars=len(query)))) as c:
        r = c.post("/retrieve", json={"query": query + tail, "topk": 5, "return_scores": True})
        assert r.status_code == 200
        got = [(h["document"]["id"], h["score"]) for h in r.json()["result"][0]]
    # The cut query's answer, and not the whole query's (its tail matches other passages).
    assert got == [(i, sc) for i, _, sc in _expected(bm25, [query], 5)[0]]
    assert got != [(i, sc) for i, _, sc in _expected(bm25, [query + tail], 5)[0]]


def test_dense_queries_are_cut_to_the_encoders_length(dense, world):
    """Two queries that agree on more tokens than the encoder reads get the same answer, however
    long: the encoder truncates, and the server's character cut (default) stays above it."""
    (query,) = _names(world, 1)
    filler = " river" * 400  # 400 tokens, more than the encoder's maximum length
    a, b = query + filler + " Arborn" * 3000, query + filler + " Corvale" * 3000
    assert max(len(a), len(b)) > ServerConfig().max_query_chars
    with TestClient(create_app(dense)) as c:
        r = c.post("/retrieve", json={"queries": [a, b], "topk": 3, "return_scores": True})
        assert r.status_code == 200
        ra, rb = r.json()["result"]
        assert [h["document"]["id"] for h in ra] == [h["document"]["id"] for h in rb]
        assert [h["score"] for h in ra] == pytest.approx([h["score"] for h in rb], abs=1e-6)


def test_search_r1_client_shape_with_a_grpo_sized_batch(client, bm25, world):
    """Search-R1's client: POST /retrieve {"queries", "topk", "return_scores": true}, reads
    response["result"][i][j]["document"]["contents"]; its GRPO script sends 2,560 queries."""
    names = _names(world, 40)
    queries = [names[i % 40] if i % 7 else "" for i in range(2560)]
    payload = {"queries": queries, "topk": 3, "return_scores": True}
    r = client.post("/retrieve", json=payload)
    assert r.status_code == 200
    result = r.json()["result"]
    assert len(result) == 2560
    expected = {q: row for q, row in zip(names, _expected(bm25, names, 3), strict=True)}
    for q, row in zip(queries, result, strict=True):
        want = expected[q] if q else []
        assert [(h["document"]["id"], h["document"]["contents"], h["score"]) for h in row] == want


def test_research_client_shapes(client, bm25, world):
    """ReSearch's rollout client: POST /batch_search {"query": [...], "top_n": 5} and reads each
    hit's "contents"; its single-query helper POSTs /search {"query": str, "top_n": 5}."""
    names = _names(world, 3)
    expected = _expected(bm25, names, 5)
    lists = client.post("/batch_search", json={"query": names, "top_n": 5}).json()
    assert [[d["contents"] for d in row] for row in lists] == [
        [c for _, c, _ in row] for row in expected
    ]
    docs = client.post("/search", json={"query": names[0], "top_n": 5}).json()
    assert [d["contents"] for d in docs] == [c for _, c, _ in expected[0]]


def test_peer_clients_over_real_http(bm25, world, live_server):
    """The same shapes through `requests`, as the peers' clients send them, against uvicorn."""
    url = live_server(create_app(bm25))
    names = _names(world, 2)
    r = requests.post(f"{url}/retrieve", json={"queries": [], "topk": 3, "return_scores": True})
    assert r.status_code == 200 and r.json()["result"] == []
    r = requests.post(
        f"{url}/retrieve", json={"queries": names + [""], "topk": 3, "return_scores": True}
    )
    rows = r.json()["result"]
    assert [len(row) for row in rows] == [3, 3, 0]
    r = requests.post(f"{url}/batch_search", json={"query": names, "top_n": 5})
    assert [len(row) for row in r.json()] == [5, 5]


def test_health_names_the_index_and_its_corpus(bm25, bm25_dir, live_server):
    url = live_server(create_app(bm25))
    body = requests.get(f"{url}/health").json()
    manifest = json.loads((bm25_dir / "manifest.json").read_text())
    assert body["manifest"] == manifest
    assert body["corpus_checksum"] == manifest["corpus_checksum"]
    assert body["corpus_checksum"] == file_checksum(bm25_dir / "corpus.jsonl")
    assert len(body["manifest_sha256"]) == 64
    assert requests.get(f"{url}/healthz").json()["manifest_sha256"] == body["manifest_sha256"]
    # An evaluation card made against the server records the same corpus checksum.
    section = retrieval_section(url=f"{url}/retrieve")
    assert section["corpus"]["checksum"] == manifest["corpus_checksum"]
    assert section["corpus"]["passages"] == manifest["num_docs"]
