"""The report in a real browser: headless Chromium (Debian's ``chromium``), driven over the
DevTools protocol. CI installs chromium (.ci/run); without it these tests fail, they never skip."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from report_driver import JS_HELPERS, assert_offline_and_clean, open_report
from report_synthetic import write_demo_dir, write_eval_dir, write_training_run

from research_rl.report import build_report

# Set to a path (e.g. docs/img/report.png) to keep the small run's screenshot.
SCREENSHOT_ENV = "RESEARCH_RL_REPORT_SCREENSHOT"


def rows_of(run_dir: Path, step: int) -> list[dict]:
    path = run_dir / "rollouts" / f"step_{step}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def haystack(row: dict) -> str:
    return (row["question"] + "\n" + "\n".join(row["golden_answers"]) + "\n" + row["text"]).lower()


def test_small_run_renders_filters_and_stays_offline(browser, tmp_path):
    run_dir = write_training_run(tmp_path / "synthetic-run", steps=12, questions=4, val_every=4)
    write_eval_dir(run_dir / "eval")
    with (run_dir / "metrics.jsonl").open("a") as f:
        f.write('{"step": 13, "reward_me')  # the run was killed mid-write
    html = build_report(run_dir, figures=False).html
    assert_offline_and_clean(open_report(browser, html), html)
    browser.evaluate(JS_HELPERS)
    problems = browser.evaluate("""Array.from(document.querySelectorAll('#problems li'))
        .map(li => li.textContent)""")
    assert len(problems) == 1
    assert problems[0].startswith(f"{run_dir / 'metrics.jsonl'}:13: invalid JSON (")

    charts = browser.evaluate("""Array.from(document.querySelectorAll('#main-charts .chart'))
      .map(c => ({
        name: c.dataset.chart, lines: c.querySelectorAll('path.line').length,
        val: c.querySelectorAll('rect.val-point').length,
        width: c.querySelector('svg').getBoundingClientRect().width}))""")
    assert [c["name"] for c in charts] == [
        "reward",
        "f1",
        "valid_format",
        "searches",
        "model_tokens",
        "kl",
        "entropy",
    ]
    assert all(c["lines"] == 1 and c["width"] > 200 for c in charts)
    assert [c["val"] for c in charts] == [3, 3, 3, 3, 3, 0, 0]  # validation at steps 4, 8, 12
    assert browser.evaluate("document.querySelectorAll('#behaviour-chart path.line').length") == 2
    assert browser.evaluate("document.querySelectorAll('#table-list table tr').length") == 5
    # Hovering a chart shows the values at the nearest step; clicking it opens that step's rollouts.
    hover = browser.evaluate("""(() => {
        const card = document.querySelector('#main-charts .chart[data-chart="reward"]');
        card.scrollIntoView();
        const overlay = card.querySelector('svg rect:last-of-type'),
          box = overlay.getBoundingClientRect();
        const at = {clientX: box.left + box.width * 2 / 11 + 1, clientY: box.top + box.height / 2,
          bubbles: true};
        overlay.dispatchEvent(new MouseEvent('mousemove', at));
        const tip = card.querySelector('.tip').textContent;
        overlay.dispatchEvent(new MouseEvent('click', at));
        const src = document.getElementById('f-source');
        return {tip, source: src.options[src.selectedIndex].text};
    })()""")
    step3 = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[2])
    assert (
        hover["tip"].startswith("step 3 ")
        and f"reward_mean: {step3['reward_mean']:.3f}" in hover["tip"]
    )
    assert hover["source"].startswith("step 3 ")
    browser.evaluate(
        """__t.set('f-source', Array.from(document.getElementById('f-source').options)
        .find(o => o.text.startsWith('step 12 ')).value)""".replace("\n", " ")
    )

    # The browser opens on the last step; its rollouts are listed and the first one is shown.
    last = rows_of(run_dir, 12)
    state = browser.evaluate("""({shown: +document.documentElement.dataset.shown,
        rows: __t.rows().length,
        question: document.querySelector('#detail h3').textContent,
        kinds: Array.from(document.querySelectorAll('#detail .seg')).map(s => s.className),
        tags: Array.from(document.querySelectorAll('#detail .seg-r .tag'))
          .map(s => s.textContent)})""")
    assert state["shown"] == state["rows"] == len(last) == 20
    assert state["question"] == last[0]["question"]
    searched = next(i for i, r in enumerate(last) if r["num_searches"])
    browser.evaluate(f"__t.rows()[{searched}].click()")
    detail = browser.evaluate("""({
        kinds: Array.from(document.querySelectorAll('#detail .seg')).map(s => s.classList[1]),
        tags: Array.from(document.querySelectorAll('#detail .seg-r .tag')).map(s => s.textContent),
        searches: Array.from(document.querySelectorAll('#detail .seg-s'))
          .map(s => s.lastChild.textContent)})""")
    assert detail["kinds"].count("seg-r") == last[searched]["text"].count("<result>") > 0
    assert all("masked" in tag for tag in detail["tags"])
    assert detail["searches"] == last[searched]["search_queries"]
    assert {"seg-t", "seg-s", "seg-r", "seg-a"} <= set(detail["kinds"])
    # Its GRPO group: the rollouts of the same question at this step, and its advantage.
    same = [r for r in last if r["question_id"] == last[searched]["question_id"]]
    mean = sum(r["reward"]["value"] for r in same) / len(same)
    group_text = browser.evaluate("document.getElementById('show-group').parentNode.textContent")
    assert group_text.startswith(f"{len(same)} rollouts of this question: mean reward ")
    assert float(group_text.split("mean reward ")[1].split(",")[0]) == pytest.approx(mean, abs=1e-3)
    grouped = browser.evaluate("""new Promise(resolve => {
        document.getElementById('show-group').click();
        requestAnimationFrame(() => resolve({shown: +document.documentElement.dataset.shown,
            questions: __t.rows().map(r => r.querySelector('.q').textContent)}));
    })""")
    assert grouped["shown"] == len(same) and set(grouped["questions"]) == {same[0]["question"]}
    browser.evaluate("document.getElementById('clear-group').click()")
    assert browser.evaluate("+document.documentElement.dataset.shown") == len(last)

    # Filters, checked against counts computed here from the rollouts file.
    answered = [r for r in last if r["finish_reason"] == "answer"]
    assert browser.evaluate("__t.set('f-finish', 'answer')")["shown"] == len(answered)
    high = [r for r in answered if r["reward"]["value"] >= 0.5]
    assert browser.evaluate("__t.set('f-rmin', '0.5')")["shown"] == len(high)
    many = [r for r in high if r["num_searches"] == 3]
    assert browser.evaluate("__t.set('f-searches', '3')")["shown"] == len(many)
    for control, value in (("f-searches", ""), ("f-rmin", ""), ("f-finish", "")):
        browser.evaluate(f"__t.set('{control}', '{value}')")
    term = last[-1]["golden_answers"][0]
    matching = [r for r in last if term.lower() in haystack(r)]
    found = browser.evaluate(f"__t.set('f-text', {json.dumps(term.upper())})")
    assert found["shown"] == found["rows"] == len(matching) < len(last)
    assert browser.evaluate("document.querySelectorAll('#detail mark').length") > 0
    browser.evaluate("__t.set('f-text', '')")
    # A whole evaluation file, then the flagged rollouts of step 1.
    groups = browser.evaluate(
        "Array.from(document.getElementById('f-source').options).map(o => [o.value, o.text])"
    )
    hop = next(v for v, label in groups if label.startswith("eval: eval synthetic_hop / research"))
    hop_state = browser.evaluate(f"__t.set('f-source', '{hop}')")
    assert hop_state["shown"] == hop_state["rows"] == 6  # and the step's 20 rows are gone
    first = next(v for v, label in groups if label.startswith("step 1 "))
    browser.evaluate(f"__t.set('f-source', '{first}')")
    none_flagged = browser.evaluate("__t.set('f-flag', 'none')")["shown"]
    flagged = browser.evaluate("__t.set('f-flag', 'flagged')")["shown"]
    assert none_flagged + flagged == len(rows_of(run_dir, 1))

    assert_offline_and_clean(browser.drain_events(), html)  # nothing requested while in use
    browser.evaluate("__t.set('f-flag', '')")
    last_step = next(v for v, label in groups if label.startswith("step 12 "))
    browser.evaluate(f"__t.set('f-source', '{last_step}')")
    showcase = max(
        range(len(last)), key=lambda i: (last[i]["num_searches"], last[i]["reward"]["value"])
    )
    browser.evaluate(f"__t.rows()[{showcase}].click()")
    shot = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "report.png")
    browser.screenshot(shot, full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ten_thousand_trajectories_load_and_filter(browser, tmp_path, capsys):
    t0 = time.perf_counter()
    # Five passages of about 60 words per search, as a real retriever returns.
    run_dir = write_training_run(
        tmp_path / "big", steps=20, questions=100, group=5, val_every=21, topk=5, filler=50
    )  # no validation: 10,000 exactly
    t1 = time.perf_counter()
    result = build_report(run_dir, figures=False)
    t2 = time.perf_counter()
    assert result.trajectories == 10_000
    html = result.html
    start = time.perf_counter()
    assert_offline_and_clean(open_report(browser, html), html)
    loaded = time.perf_counter() - start
    browser.evaluate(JS_HELPERS)
    ready_at = float(browser.evaluate("document.documentElement.dataset.readyAt"))
    timed: dict[str, tuple[float, dict]] = {}

    def timed_set(name: str, control: str, value: str) -> dict:
        """Change a control; keep the in-page filter time and the round trip seen from here
        (filter, list and detail re-render, the next frame, and the CDP call)."""
        start = time.perf_counter()
        state = browser.evaluate(f"__t.set('{control}', {json.dumps(value)})")
        timed[name] = (time.perf_counter() - start, state)
        return state

    everything = timed_set("show all", "f-source", "all")
    assert everything["shown"] == 10_000
    assert everything["rows"] < 100  # virtualised: only the visible rows exist
    all_rows = [r for step in range(1, 21) for r in rows_of(run_dir, step)]
    term = "wait,"
    text = timed_set("text search", "f-text", term)
    assert text["shown"] == sum(term in haystack(r) for r in all_rows) > 0
    assert timed_set("text search, no match", "f-text", "zq-nowhere")["shown"] == 0  # a full scan
    timed_set("text search, common word", "f-text", "port")
    reward = timed_set("reward >= 0.9", "f-rmin", "0.9")
    assert reward["shown"] == sum(
        "port" in haystack(r) and r["reward"]["value"] >= 0.9 for r in all_rows
    )
    timed_set("finish = answer", "f-finish", "answer")
    timed_set("sort by reward", "f-sort", "rdesc")
    scrolled = browser.evaluate("""new Promise(resolve => {
        const list = document.getElementById('list'); list.scrollTop = list.scrollHeight;
        requestAnimationFrame(() => requestAnimationFrame(() => resolve(
          __t.rows().map(r => r.style.top))));
    })""")
    assert f"{(reward['shown'] - 1) * 30}px" in scrolled  # the last row is drawn at the bottom
    size_mb = html.stat().st_size / 1e6
    steps = "; ".join(
        f"{name} {1000 * wall:.0f} ms (filter {state['filterMs']:.1f} ms, {state['shown']} shown)"
        for name, (wall, state) in timed.items()
    )
    with capsys.disabled():
        print(
            f"\n[report 10k] write run {t1 - t0:.2f}s, build report {t2 - t1:.2f}s "
            f"({size_mb:.1f} MB); browser load {loaded:.2f}s (page ready {ready_at:.0f} ms "
            f"after navigation start); {steps}; text searches include the 150 ms typing debounce"
        )


def test_partial_run_dirs_render_what_they_have(browser, tmp_path):
    def visible(ids: list[str]) -> list[str]:
        return browser.evaluate(
            f"{json.dumps(ids)}.filter(id => !document.getElementById(id).hidden)"
        )

    sections = ["curves", "behaviours", "tables", "browser", "config"]
    evaluation = build_report(write_eval_dir(tmp_path / "eval"), figures=False).html
    assert_offline_and_clean(open_report(browser, evaluation), evaluation)
    assert visible(sections) == ["tables", "browser"]

    metrics_only = write_training_run(tmp_path / "metrics-only", steps=3, questions=1)
    for f in (metrics_only / "rollouts").rglob("*.jsonl"):
        f.unlink()
    html = build_report(metrics_only, figures=False).html
    assert_offline_and_clean(open_report(browser, html), html)
    assert visible(sections) == ["curves", "config"]


def test_demo_run_shows_before_and_after(browser, tmp_path):
    html = build_report(write_demo_dir(tmp_path / "demo"), figures=False).html
    assert_offline_and_clean(open_report(browser, html), html)
    headers = browser.evaluate("""Array.from(document.querySelectorAll('#table-list table'))
        .map(t => Array.from(t.querySelectorAll('th')).map(th => th.textContent))""")
    assert headers[0] == [
        "questions",
        "em before",
        "em after",
        "f1 before",
        "f1 after",
        "n before",
        "n after",
    ]
    sources = browser.evaluate(
        "Array.from(document.getElementById('f-source').options).map(o => o.text)"
    )
    assert {"eval: before (6)", "eval: after (6)"} <= set(sources)


def test_evaluations_show_their_cards_the_cost_plot_and_the_differences(browser, tmp_path):
    from report_eval_runs import write_real_eval_dir

    write_real_eval_dir(tmp_path / "runs" / "top2", topk=2)
    write_real_eval_dir(tmp_path / "runs" / "top3", topk=3)
    html = build_report(tmp_path / "runs", figures=False, allow_different=True).html
    assert_offline_and_clean(open_report(browser, html), html)
    shown = browser.evaluate("""({
      notes: Array.from(document.querySelectorAll('#eval-notes p')).map(p => p.textContent),
      points: document.querySelectorAll('#eval-charts .chart rect.val-point').length,
      cards: Array.from(document.querySelectorAll('#card-list summary')).map(s => s.textContent),
      header: Array.from(document.querySelectorAll('#table-list th')).map(th => th.textContent),
      cell: document.querySelector('#table-list tr:nth-child(2) td:nth-child(6)').textContent})""")
    assert len(shown["notes"]) == 1 and "topk (2 vs 3)" in shown["notes"][0]
    assert shown["points"] == 4  # research and rag of each run, at their retriever calls
    assert shown["cards"] == ["Protocol card (top2)", "Protocol card (top3)"]
    assert shown["header"][:6] == ["run", "dataset", "method", "n", "seeds", "EM"]
    assert re.fullmatch(r"\d+\.\d \[\d+\.\d, \d+\.\d\]", shown["cell"])  # EM with its interval
    hover = browser.evaluate("""(() => {
      const chart = document.querySelector('#eval-charts .chart');
      const overlay = chart.querySelector('svg rect[fill=transparent]');
      const r = overlay.getBoundingClientRect();
      overlay.dispatchEvent(new MouseEvent('mousemove',
        {clientX: r.left + r.width / 2, clientY: r.top + 5, bubbles: true}));
      return chart.querySelector('.tip').textContent; })()""")
    assert hover.startswith("retriever calls 1")
