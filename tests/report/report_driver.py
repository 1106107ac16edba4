"""Driving the report page in headless Chromium: load it, check it stayed offline, change its
controls as a user would."""

from __future__ import annotations

from pathlib import Path

from report_cdp import Browser


def open_report(browser: Browser, html: Path) -> list[dict]:
    """Load ``html``; return the CDP events seen until the page's script finished."""
    browser.events.clear()
    browser.page("Page.navigate", {"url": html.resolve().as_uri()})
    browser.wait_event("Page.loadEventFired")
    assert browser.evaluate("document.documentElement.dataset.ready") == "1", (
        "page script did not finish"
    )
    return browser.drain_events()


def assert_offline_and_clean(events: list[dict], html: Path) -> None:
    requests = [
        e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"
    ]
    assert requests == [html.resolve().as_uri()], f"the page made requests: {requests}"
    errors = [
        e["params"]
        for e in events
        if e["method"] == "Runtime.exceptionThrown"
        or (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
    ]
    assert errors == []


JS_HELPERS = """
window.__t = {
  rows() {  // list rows actually drawn (a hidden pooled row has no box)
    return Array.from(document.querySelectorAll('#list .row'))
      .filter(r => r.getClientRects().length);
  },
  set(id, value, kind) {  // change a control as a user would, and wait for the filter to rerun
    const root = document.documentElement, before = Number(root.dataset.filterRuns);
    const c = document.getElementById(id); c.value = value;
    c.dispatchEvent(new Event(kind || (c.tagName === 'SELECT' ? 'change' : 'input')));
    return new Promise((resolve, reject) => {
      const t0 = performance.now();
      (function poll() {
        if (Number(root.dataset.filterRuns) > before)
          requestAnimationFrame(() => resolve({shown: Number(root.dataset.shown),
            filterMs: Number(root.dataset.filterMs), wallMs: performance.now() - t0,
            rows: window.__t.rows().length}));
        else if (performance.now() - t0 > 20000) reject(new Error('filter never ran'));
        else setTimeout(poll, 5);
      })();
    });
  },
};
"""
