"""The OpenAI-compatible completions backend and the LLM judge against a local endpoint that this
test starts on 127.0.0.1: completions follow a script, chat replies are judge verdicts (some
malformed, some too slow)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from research_rl.backends.base import GenerationRequest, SamplingParams
from research_rl.backends.openai import (
    OpenAICompletionsBackend,
    ServerBackendError,
    infer_stop,
)
from research_rl.config import validate_config
from research_rl.evaluation.config import EvalConfig, JudgeSettings
from research_rl.evaluation.judge import Judge, parse_verdict
from research_rl.evaluation.runner import open_evaluation

SCRIPTS = {  # question -> the model's text per turn (stop strings included, as a model writes)
    "In which country was Tepu Suno born?": [
        "<think> Find the city. </think> <search> Tepu Suno born </search> ignored",
        "<think> Suzeton is in Nokate. </think> <answer> \\boxed{Nokate} </answer>",
    ],
    "In which country was Tesu Rivi born?": [
        "<think> I guess. </think> <answer> \\boxed{Elnobo Republic} </answer>",
    ],
    "Where was Tepu Suno born?": ["<think> No idea. </think> I give up."],  # ends with EOS
}


class FakeServer:
    """Scripted /v1/completions and judge /v1/chat/completions, recording every request."""

    def __init__(self) -> None:
        self.completions: list[dict] = []
        self.chats: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.report_stop = True  # vLLM's stop_reason; False: a server that says nothing
        self.delay_s = 0.0
        self.fail_on: str | None = None  # prompts holding this text get HTTP 503
        self.app = FastAPI()
        self.app.get("/v1/models")(self.models)
        self.app.post("/v1/completions")(self.complete)
        self.app.post("/v1/chat/completions")(self.chat)

    async def models(self):
        return {"object": "list", "data": [{"id": "tiny-served", "object": "model"}]}

    async def complete(self, request: Request):
        body = await request.json()
        self.completions.append(body)
        if body["model"] != "tiny-served":
            return JSONResponse({"error": f"model {body['model']} not found"}, status_code=404)
        prompt = body["prompt"]
        if self.fail_on and self.fail_on in prompt:
            return JSONResponse({"error": "overloaded"}, status_code=503)
        if "SLOW" in prompt:
            await asyncio.sleep(1)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await asyncio.sleep(self.delay_s)
        self.in_flight -= 1
        question = next(q for q in SCRIPTS if q in prompt)
        turn = prompt.split("Assistant:")[-1].count("<result>")
        text = SCRIPTS[question][turn]
        cut = [(text.index(s), s) for s in body["stop"] if s in text]
        finish, stop_reason = "stop", None
        if cut:
            at, stop_reason = min(cut)
            text = text[:at]  # servers drop the stop string from the text
        if len(text) > 4 * body["max_tokens"]:  # a crude budget: about four characters a token
            text, finish, stop_reason = text[: 4 * body["max_tokens"]], "length", None
        choice = {"index": 0, "text": text, "finish_reason": finish}
        if self.report_stop:
            choice["stop_reason"] = stop_reason
        return {
            "id": "cmpl-1",
            "object": "text_completion",
            "model": body["model"],
            "choices": [choice],
        }

    async def chat(self, request: Request):
        """The terse preset gets one word back; the research preset a rationale that names both
        verdicts, then the JSON verdict (what ReSearch's judge prompt asks for)."""
        body = await request.json()
        prompt = body["messages"][-1]["content"]
        self.chats.append(prompt)
        terse = "Answer to grade:" in prompt
        marker = "Answer to grade:" if terse else "predicted answer:"
        prediction = prompt.split(marker)[1].split("\n")[0].strip()
        golden = prompt.split("Reference answers:" if terse else "ground-truth answers:")[1]
        golden = golden.split("\n")[0].strip()
        asked = sum(prediction in p.split(marker)[1] for p in self.chats)
        if prediction == "slow":
            await asyncio.sleep(1)
            verdict = "correct"
        elif prediction == "garbled":
            return self._reply("Hmm, it could go either way.")
        elif prediction == "flaky":
            verdict = "correct or incorrect, hard to say" if asked == 1 else "correct"
        elif prediction == "broken":
            return {"choices": []}
        else:
            verdict = "correct" if prediction.split()[0] in golden else "incorrect"
        if terse:
            return self._reply("Correct." if verdict == "correct" else verdict)
        # The words alone are ambiguous; the braces in the rationale must not confuse the parser.
        return self._reply(
            f"Is it correct or incorrect? Compared with {golden}.\n"
            + json.dumps({"rationale": "compared {x} with the answers", "judgement": verdict})
        )

    @staticmethod
    def _reply(content: str) -> dict:
        return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}


@pytest.fixture(scope="module")
def server():
    fake = FakeServer()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(fake.app, log_level="warning", timeout_graceful_shutdown=1)
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline, "the local endpoint did not start"
        time.sleep(0.02)
    fake.url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    yield fake
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(autouse=True)
def reset(server):
    server.completions.clear()
    server.chats.clear()
    server.max_in_flight = 0
    server.report_stop = True
    server.delay_s = 0.0
    server.fail_on = None


def test_research_loop_through_the_server_with_judge(server, world, make_config, tmp_path):
    server.delay_s = 0.2  # long enough for concurrent requests to overlap on the server
    raw = make_config(
        tmp_path / "out",
        model={
            "backend": "openai",
            "path": str(world["model"]),
            "url": server.url,
            "max_in_flight": 2,
        },
        methods=["research"],
        judge={"url": server.url, "model": "judge", "cache": str(tmp_path / "verdicts.jsonl")},
    )
    evaluation = open_evaluation(validate_config(raw, EvalConfig), progress=False)
    [row] = evaluation.run()
    rows = {
        r["id"]: r
        for r in map(
            json.loads,
            (tmp_path / "out" / "predictions" / "tiny__research.jsonl").read_text().splitlines(),
        )
    }

    q1 = rows["q1"]
    assert (q1["prediction"], q1["em"], q1["num_searches"]) == ("Nokate", 1.0, 1)
    assert q1["finish_reason"] == "eos" and q1["valid_format"]  # the research profile
    # The second turn's prompt is the first turn's text, stop string restored, plus the result.
    second = [c["prompt"] for c in server.completions if "<result>" in c["prompt"]]
    assert len(second) == 1
    assert "<search> Tepu Suno born </search> <result>\nTepu Suno\nTepu Suno was" in second[0]
    assert all(c["stop"] == ["</search>"] for c in server.completions)
    assert server.max_in_flight == 2  # bounded, and actually concurrent

    q2 = rows["q2"]  # "Elnobo Republic" vs "Elnobo": not EM, covered, judged correct
    assert (q2["em"], q2["cover_em"], q2["judge"]["correct"]) == (0.0, 1.0, True)
    q3 = rows["q3"]  # no \boxed{}: nothing to judge, no judge request
    assert q3["finish_reason"] == "eos" and q3["prediction"] is None
    assert q3["judge"] == {"correct": False, "reply": "", "error": "no prediction to judge"}
    assert len(server.chats) == 2
    assert row["judge"] == pytest.approx(2 / 3) and row["judge_failed"] == 0
    assert row["em"] == pytest.approx(1 / 3) and row["cover_em"] == pytest.approx(2 / 3)


def test_a_question_that_lost_its_search_is_counted_not_scored_or_judged(
    server, world, make_config, tmp_path
):
    with socket.socket() as s:  # a retriever URL where nothing listens
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    raw = make_config(
        tmp_path / "out",
        model={"backend": "openai", "path": str(world["model"]), "url": server.url},
        methods=["research"],
        retriever={"url": dead, "max_retries": 0},
        judge={"url": server.url, "model": "judge", "cache": str(tmp_path / "verdicts.jsonl")},
    )
    [row] = open_evaluation(validate_config(raw, EvalConfig), progress=False).run()
    path = tmp_path / "out" / "predictions" / "tiny__research.jsonl"
    rows = {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}
    q1 = rows["q1"]  # the only question that searches
    assert q1["retriever_failed"] and q1["finish_reason"] == "retriever_error"
    assert (q1["em"], q1["f1"], q1["cover_em"], q1["valid_format"]) == (None,) * 4
    assert q1["reward"] is None and "judge" not in q1
    assert f"{dead}/retrieve unreachable" in q1["trajectory"]["error"]
    assert not rows["q2"]["retriever_failed"] and len(server.chats) == 1  # q2 only (q3: no box)
    # counted in n and apart; every metric over the two questions that were answered
    assert (row["n"], row["retriever_failed"]) == (3, 1)
    assert row["em"] == 0.0 and row["cover_em"] == pytest.approx(1 / 2)
    assert row["judge"] == pytest.approx(1 / 2) and row["judge_failed"] == 0
    md = (tmp_path / "out" / "results.md").read_text()
    assert "| judge failed | retriever failed | searches |" in md


def test_server_failure_keeps_finished_questions_and_resumes(server, world, make_config, tmp_path):
    raw = make_config(
        tmp_path / "out",
        methods=["direct"],
        model={
            "backend": "openai",
            "path": str(world["model"]),
            "url": server.url,
            "max_in_flight": 2,
            "max_retries": 1,
        },
    )
    cfg = validate_config(raw, EvalConfig)
    server.fail_on = "Where was Tepu Suno born?"  # q3 fails on every attempt
    evaluation = open_evaluation(cfg, progress=False)
    evaluation.backend.backoff_s = 0.0
    with pytest.raises(ServerBackendError, match=r"HTTP 503.*\(after 2 attempts\)"):
        evaluation.run()
    path = tmp_path / "out" / "predictions" / "tiny__direct.jsonl"
    assert sorted(json.loads(line)["id"] for line in path.read_text().splitlines()) == ["q1", "q2"]

    server.fail_on = None
    server.completions.clear()
    [row] = open_evaluation(cfg, progress=False).run()
    assert [c["prompt"].count("Where was Tepu Suno born?") for c in server.completions] == [1]
    assert row["n"] == 3


def test_stop_string_inferred_when_the_server_does_not_say(server, tokenizer):
    server.report_stop = False
    backend = OpenAICompletionsBackend(server.url, tokenizer, max_in_flight=2)
    prompts = [f"Question: {q}\nAssistant:" for q in SCRIPTS]
    requests = [
        GenerationRequest(tokenizer.encode(p), 200, ["</search>", "</answer>"]) for p in prompts
    ]
    search, answer, eos = backend.generate(requests, SamplingParams(temperature=0))
    assert (search.finish_reason, search.stop_string) == ("stop", "</search>")
    assert tokenizer.decode(search.token_ids).endswith("<search> Tepu Suno born </search>")
    assert (answer.finish_reason, answer.stop_string) == ("stop", "</answer>")
    assert eos.finish_reason == "eos" and eos.token_ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(eos.token_ids[:-1]) == SCRIPTS["Where was Tepu Suno born?"][0]
    assert server.completions[0]["model"] == "tiny-served"  # from /v1/models

    short = backend.generate(
        [GenerationRequest(requests[0].prompt_ids, 3, ["</search>"])], SamplingParams(temperature=0)
    )[0]
    assert short.finish_reason == "length" and len(short.token_ids) <= 3


def test_infer_stop_rules():
    stops = ["</search>", "</answer>"]
    assert infer_stop("x", stops, {"stop_reason": "</answer>"}) == "</answer>"
    assert infer_stop("<search> q", stops, {"stop_reason": None}) is None  # vLLM: EOS
    assert infer_stop("<search> q", stops, {}) == "</search>"  # no field: the open tag says
    assert infer_stop("<answer> a", stops, {"matched_stop": 151643}) is None  # an EOS token id
    assert infer_stop("<answer> a </answer>", stops, {}) == "</answer>"
    assert infer_stop("<search> q </search> <answer> a", stops, {}) == "</answer>"
    assert infer_stop("plain text", stops, {}) is None


def test_server_timeouts_are_retried_then_reported(server, tokenizer):
    backend = OpenAICompletionsBackend(
        server.url, tokenizer, model="tiny-served", timeout_s=0.3, max_retries=1, backoff_s=0.0
    )
    request = GenerationRequest(tokenizer.encode("SLOW Where was Tepu Suno born?"), 20, [])
    with pytest.raises(
        ServerBackendError,
        match=r"/v1/completions: timed out after 0.3s "
        r"\(after 2 attempts\)",
    ):
        backend.generate([request], SamplingParams(temperature=0))
    assert len(server.completions) == 2


def test_client_errors_are_not_retried(server, tokenizer):
    backend = OpenAICompletionsBackend(server.url, tokenizer, model="not-served", max_retries=3)
    request = GenerationRequest(tokenizer.encode("Where was Tepu Suno born?"), 20, [])
    with pytest.raises(ServerBackendError, match="HTTP 404.*not-served not found"):
        backend.generate([request], SamplingParams(temperature=0))
    assert len(server.completions) == 1


def judge_settings(server, tmp_path, **kw) -> JudgeSettings:
    return JudgeSettings(
        url=server.url, model="judge", backoff_s=0.0, cache=str(tmp_path / "cache.jsonl"), **kw
    )


def test_judge_defaults_to_the_research_preset_with_room_for_a_rationale(server, tmp_path):
    settings = judge_settings(server, tmp_path)
    assert (settings.preset, settings.max_tokens) == ("research", 512)
    verdict = Judge(settings, settings.cache).judge("Capital of France?", ["Paris"], "Paris")
    assert verdict.correct is True and verdict.reply.startswith("Is it correct or incorrect?")
    [prompt] = server.chats
    assert "Give your reasons first" in prompt and '"judgement"' in prompt
    assert "predicted answer: Paris" in prompt and "ground-truth answers: Paris" in prompt
    own = judge_settings(server, tmp_path, prompt="Q {question} G {golden_answers} P {prediction}")
    assert own.prompt_text == "Q {question} G {golden_answers} P {prediction}"


@pytest.mark.parametrize("preset, reply", [("terse", "Correct."), ("research", None)])
def test_judge_retries_malformed_replies_and_caches_verdicts(server, tmp_path, preset, reply):
    settings = judge_settings(server, tmp_path, max_retries=2, preset=preset)
    judge = Judge(settings, settings.cache)
    items = [
        ("Capital of France?", ["Paris"], "Paris"),
        ("Capital of Spain?", ["Madrid"], "Rome"),
        ("Q?", ["a"], "flaky"),
        ("Q?", ["a"], "garbled"),
        ("Q?", ["a"], "broken"),
    ]
    paris, rome, flaky, garbled, broken = judge.judge_many(items)
    assert paris.correct is True and paris.reply == (reply or paris.reply)
    assert rome.correct is False
    assert flaky.correct is True  # a malformed first reply, then a clean one
    assert garbled.correct is None and "malformed judge reply" in garbled.error
    assert "(after 3 attempts)" in garbled.error
    assert broken.correct is None and "malformed response" in broken.error
    assert len(server.chats) == 1 + 1 + 2 + 3 + 3

    server.chats.clear()
    again = Judge(settings, settings.cache).judge_many(items)
    assert [v.correct for v in again] == [True, False, True, None, None]
    assert [v.cached for v in again] == [True, True, True, False, False]
    assert len(server.chats) == 3 + 3  # only the unresolved "garbled" and "broken" again


def test_judge_timeouts_give_no_verdict(server, tmp_path):
    settings = judge_settings(server, tmp_path, timeout_s=0.3, max_retries=1)
    verdict = Judge(settings, settings.cache).judge("Q?", ["a"], "slow")
    assert verdict.correct is None
    assert "timed out after 0.3s" in verdict.error and "(after 2 attempts)" in verdict.error


def test_parse_verdict():
    assert parse_verdict("Correct") is True
    assert parse_verdict("**incorrect**") is False
    assert parse_verdict("The answer is not correct.") is False
    assert parse_verdict("correct / incorrect") is None
    assert parse_verdict("") is None


def test_parse_verdict_reads_a_rationale_then_a_json_verdict():
    fenced = (
        "The prediction is not the same city, so it is incorrect... or is it correct?\n"
        '```json\n{\n  "rationale": "Lyon {the city} is not Paris",\n'
        '  "judgement": "incorrect"\n}\n```'
    )
    assert parse_verdict(fenced) is False
    assert parse_verdict('{"rationale": "same", "judgement": "Correct"}') is True
    assert parse_verdict('{"verdict": "correct"}') is True
    # the last verdict object wins; an object without one is skipped
    assert (
        parse_verdict('{"judgement": "correct"} then {"judgement": "incorrect"} {"a": 1}') is False
    )
    # the template copied back ("correct" | "incorrect") is not a verdict
    assert parse_verdict('{"rationale": "...", "judgement": "correct" | "incorrect"}') is None
    assert parse_verdict('{"rationale": "x", "judgement": "correct or incorrect"}') is None
