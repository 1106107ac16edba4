// research-rl run report. Everything is drawn from the JSON embedded in #report-data; no request
// leaves the page. Untrusted text (model output, passages) is only ever set through textContent.
"use strict";
(function () {
  const t0 = performance.now();
  const D = JSON.parse(document.getElementById("report-data").textContent);
  const SVG_NS = "http://www.w3.org/2000/svg";
  const COLOURS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#db2777", "#0891b2"];
  const SEG_NAMES = { t: "think", s: "search", r: "result", a: "answer", o: "outside tags",
    w: "result written by the model · not from the retriever · trained on (not masked)" };
  const FLAG_LABELS = { search_after_miss: "search again after a miss", revision: "revision" };
  const ROW_H = 30;
  const root = document.documentElement;

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v; else node.setAttribute(k, v);
    }
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function svg(tag, attrs) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  }
  function fmt(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v !== "number") return String(v);
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
    return v.toFixed(a < 1 ? 3 : 2);
  }
  function tickFmt(v) {
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(1) : String(+v.toPrecision(6));
  }
  function show(id) { document.getElementById(id).hidden = false; }

  // ---- header --------------------------------------------------------------------------------
  document.getElementById("run-title").textContent = D.title;
  const nTraj = D.trajectories.length;
  const embedded = nTraj < D.total_trajectories ? ` (${nTraj} of ${D.total_trajectories} embedded: see --max-trajectories)` : "";
  document.getElementById("run-meta").textContent =
    `${D.path} · ${D.steps} logged steps · ${D.total_trajectories} trajectories in ${D.groups.length} files${embedded} · generated ${D.generated}`;
  if (D.problem_count) {
    const box = document.getElementById("problems");
    box.hidden = false;
    box.querySelector("summary").textContent =
      `${D.problem_count} line(s) or file(s) skipped: why`;
    const ul = box.querySelector("ul");
    for (const p of D.problems) ul.appendChild(el("li", {}, p));
    if (D.problem_count > D.problems.length)
      ul.appendChild(el("li", {}, `… and ${D.problem_count - D.problems.length} more`));
  }

  // ---- charts --------------------------------------------------------------------------------
  function niceTicks(lo, hi, count) {
    const span = hi - lo || Math.abs(hi) || 1;
    const raw = span / count, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map(m => m * mag).find(s => span / s <= count) || 10 * mag;
    const ticks = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(+v.toPrecision(12));
    return ticks;
  }
  let onStepClick = null;
  function drawChart(parent, chart) {
    const card = el("div", { class: "chart", "data-chart": chart.name });
    card.appendChild(el("h3", {}, chart.title));
    const W = 440, H = 200, L = 50, R = 12, T = 8, B = 24;
    let xs = [], ys = [];
    for (const line of chart.lines) { xs = xs.concat(line.steps); ys = ys.concat(line.values); }
    // A loop, not Math.min(...xs): spreading a long run's steps overflows the call stack.
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (const x of xs) { if (x < x0) x0 = x; if (x > x1) x1 = x; }
    for (const y of ys) { if (y < y0) y0 = y; if (y > y1) y1 = y; }
    if (x0 === x1) { x0 -= 1; x1 += 1; }
    if (y0 === y1) { const d = Math.abs(y0) * 0.1 || 1; y0 = y0 >= 0 ? Math.max(0, y0 - d) : y0 - d; y1 += d; }
    const nonNegative = y0 >= 0;
    const pad = (y1 - y0) * 0.06; y0 -= pad; y1 += pad;
    if (nonNegative && y0 < 0) y0 = 0; // rates, counts and lengths: no negative axis below them
    const X = s => L + (s - x0) / (x1 - x0) * (W - L - R);
    const Y = v => T + (1 - (v - y0) / (y1 - y0)) * (H - T - B);
    const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": chart.title });
    const grid = svg("g", { class: "grid" }), axis = svg("g", { class: "axis" });
    for (const v of niceTicks(y0, y1, 5)) {
      grid.appendChild(svg("line", { x1: L, x2: W - R, y1: Y(v), y2: Y(v) }));
      const t = svg("text", { x: L - 4, y: Y(v) + 3, "text-anchor": "end" }); t.textContent = tickFmt(v); axis.appendChild(t);
    }
    const overSteps = !chart.x; // a chart over steps: integer ticks, a click browses that step
    for (const v of niceTicks(x0, x1, 6)) {
      if (overSteps && !Number.isInteger(v)) continue;
      const t = svg("text", { x: X(v), y: H - 6, "text-anchor": "middle" }); t.textContent = String(v); axis.appendChild(t);
    }
    axis.appendChild(svg("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, stroke: "#9ca3af" }));
    s.appendChild(grid); s.appendChild(axis);
    const colourOf = {};
    const legend = el("div", { class: "legend" });
    for (const line of chart.lines) {
      const base = line.key.replace(/^val\//, "");
      const colour = colourOf[base] || (colourOf[base] = COLOURS[Object.keys(colourOf).length % COLOURS.length]);
      const item = el("span", {}); const sw = el("i", { class: line.val ? "val" : "" });
      sw.style.background = colour; item.appendChild(sw); item.appendChild(document.createTextNode(line.key));
      legend.appendChild(item);
      if (line.val) {
        for (let i = 0; i < line.steps.length; i++) {
          const cx = X(line.steps[i]), cy = Y(line.values[i]);
          s.appendChild(svg("rect", { class: "val-point", x: cx - 3.5, y: cy - 3.5, width: 7, height: 7, fill: colour,
            stroke: "#111", "stroke-width": 0.8, transform: `rotate(45 ${cx} ${cy})` }));
        }
      } else {
        let d = "";
        for (let i = 0; i < line.steps.length; i++) d += (i ? "L" : "M") + X(line.steps[i]).toFixed(1) + "," + Y(line.values[i]).toFixed(1);
        s.appendChild(svg("path", { class: "line", d, fill: "none", stroke: colour, "stroke-width": 1.6 }));
        if (line.steps.length === 1) s.appendChild(svg("circle", { cx: X(line.steps[0]), cy: Y(line.values[0]), r: 2.5, fill: colour }));
      }
    }
    // Hover: the values of every line at the nearest step.
    const cursor = svg("line", { y1: T, y2: H - B, stroke: "#9ca3af", "stroke-dasharray": "3,3", visibility: "hidden" });
    s.appendChild(cursor);
    const allSteps = Array.from(new Set(xs)).sort((a, b) => a - b);
    const lookup = chart.lines.map(line => new Map(line.steps.map((st, i) => [st, line.values[i]])));
    const tip = el("div", { class: "tip" }); tip.hidden = true;
    const overlay = svg("rect", { x: L, y: T, width: W - L - R, height: H - T - B, fill: "transparent" });
    let hoverStep = null;
    overlay.addEventListener("mousemove", ev => {
      const box = s.getBoundingClientRect();
      const sx = (ev.clientX - box.left) / box.width * W;
      const target = x0 + (sx - L) / (W - L - R) * (x1 - x0);
      hoverStep = allSteps.reduce((a, b) => Math.abs(b - target) < Math.abs(a - target) ? b : a);
      cursor.setAttribute("x1", X(hoverStep)); cursor.setAttribute("x2", X(hoverStep));
      cursor.setAttribute("visibility", "visible");
      const parts = [`${chart.x || "step"} ${fmt(hoverStep)}`];
      chart.lines.forEach((line, i) => { if (lookup[i].has(hoverStep)) parts.push(`${line.key}: ${fmt(lookup[i].get(hoverStep))}`); });
      tip.textContent = parts.join("   ");
      tip.hidden = false;
      tip.style.left = Math.min(ev.clientX - card.getBoundingClientRect().left + 10, card.clientWidth - tip.offsetWidth - 4) + "px";
      tip.style.top = "26px";
    });
    overlay.addEventListener("mouseleave", () => { tip.hidden = true; cursor.setAttribute("visibility", "hidden"); });
    overlay.addEventListener("click", () => { if (overSteps && hoverStep !== null && onStepClick) onStepClick(hoverStep); });
    s.appendChild(overlay);
    card.appendChild(s); card.appendChild(legend); card.appendChild(tip);
    parent.appendChild(card);
  }
  const nav = document.getElementById("nav");
  function addNav(id, label) { const a = el("a", { href: "#" + id }, label); nav.appendChild(a); }

  if (D.charts.length || D.other_charts.length) {
    show("curves"); addNav("curves", "Curves");
    const main = document.getElementById("main-charts");
    for (const c of D.charts) drawChart(main, c);
    if (D.other_charts.length) {
      show("more-curves");
      const other = document.getElementById("other-charts");
      for (const c of D.other_charts) drawChart(other, c);
    }
  }
  if (D.behaviour_chart) {
    show("behaviours"); addNav("behaviours", "Behaviours");
    drawChart(document.getElementById("behaviour-chart"), D.behaviour_chart);
    const table = document.getElementById("behaviour-table");
    const head = el("tr"); ["step", "rollouts", ...D.behaviour_names.map(n => FLAG_LABELS[n] || n)].forEach(h => head.appendChild(el("th", {}, h)));
    table.appendChild(head);
    for (const e of D.behaviours) {
      const tr = el("tr");
      tr.appendChild(el("td", { class: "num" }, e.step)); tr.appendChild(el("td", { class: "num" }, e.rollouts));
      for (const n of D.behaviour_names) tr.appendChild(el("td", { class: "num" }, `${e[n]} (${(100 * e[n + "_rate"]).toFixed(0)}%)`));
      table.appendChild(tr);
    }
  }

  // ---- tables --------------------------------------------------------------------------------
  if (D.tables.length || D.eval_charts.length || D.cards.length) {
    show("tables"); addNav("tables", "Evaluation");
    for (const note of D.eval_notes) document.getElementById("eval-notes").appendChild(el("p", { class: "note" }, note));
    for (const c of D.eval_charts) drawChart(document.getElementById("eval-charts"), c);
    for (const card of D.cards) {
      const box = el("details", { class: "card" }); box.appendChild(el("summary", {}, card.title));
      box.appendChild(el("pre", {}, card.text)); document.getElementById("card-list").appendChild(box);
    }
    const list = document.getElementById("table-list");
    for (const t of D.tables) {
      list.appendChild(el("h3", {}, t.title));
      const wrap = el("div", { class: "table-wrap" }), table = el("table", { class: "results" });
      const head = el("tr"); t.columns.forEach(c => head.appendChild(el("th", {}, c))); table.appendChild(head);
      for (const row of t.rows) {
        const tr = el("tr");
        row.forEach(v => tr.appendChild(el("td", { class: typeof v === "number" ? "num" : "" }, fmt(v))));
        table.appendChild(tr);
      }
      wrap.appendChild(table); list.appendChild(wrap);
    }
  }
  if (D.config) { show("config"); addNav("config", "Config"); document.getElementById("config-text").textContent = D.config; }

  // ---- trajectory browser --------------------------------------------------------------------
  const T = D.trajectories;
  if (T.length) {
    show("browser"); addNav("browser", "Trajectories");
    const $ = id => document.getElementById(id);
    const src = $("f-source"), rmin = $("f-rmin"), rmax = $("f-rmax"), fin = $("f-finish"),
      srch = $("f-searches"), flg = $("f-flag"), sort = $("f-sort"), txt = $("f-text");
    const list = $("list"), spacer = $("spacer"), detail = $("detail"), count = $("count");
    const byGroup = D.groups.map(() => []);
    T.forEach((t, i) => byGroup[t.g].push(i));
    const stepGroups = D.groups.map((g, i) => i).filter(i => D.groups[i].kind === "step");
    function option(select, value, label) { select.appendChild(el("option", { value }, label)); }
    if (stepGroups.length > 1) option(src, "steps", `all training steps (${stepGroups.reduce((n, i) => n + byGroup[i].length, 0)})`);
    D.groups.forEach((g, i) => option(src, String(i), `${g.label} (${g.count < g.total ? g.count + " of " + g.total : g.count})`));
    option(src, "all", `everything (${T.length})`);
    src.value = stepGroups.length ? String(stepGroups[stepGroups.length - 1]) : "0";
    option(fin, "", "any");
    Array.from(new Set(T.map(t => t.fin))).sort().forEach(f => option(fin, f, f));
    option(srch, "", "any");
    const nsValues = Array.from(new Set(T.map(t => t.ns))).sort((a, b) => a - b);
    nsValues.forEach(n => option(srch, String(n), String(n)));
    if (nsValues.length > 1) option(srch, "1+", "1 or more");
    option(flg, "", "any");
    D.behaviour_names.forEach((n, i) => option(flg, String(1 << i), FLAG_LABELS[n] || n));
    option(flg, "flagged", "any flagged");
    option(flg, "none", "none flagged");
    [["file", "file order"], ["rdesc", "reward, high first"], ["rasc", "reward, low first"],
     ["ns", "most searches"], ["nt", "most model tokens"]].forEach(([v, l]) => option(sort, v, l));

    // Case-insensitive search straight on the stored strings: no lower-cased copy of a page's
    // worth of text to build (that took most of a second for 10,000 rollouts on a slow CPU).
    function matcher(text) {
      const re = new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "i");
      return t => re.test(t.q) || t.a.some(a => re.test(a)) || t.s.some(x => re.test(x[1]));
    }
    let shown = [], selected = -1, term = "";
    let sameQuestion = null; // {g, id}: only the rollouts of one question in one file
    function num(input) { const v = input.value.trim(); return v === "" ? null : Number(v); }

    function applyFilters() {
      const f0 = performance.now();
      let pool;
      if (src.value === "all") pool = T.map((_, i) => i);
      else if (src.value === "steps") pool = [].concat(...stepGroups.map(g => byGroup[g]));
      else pool = byGroup[Number(src.value)] || [];
      const lo = num(rmin), hi = num(rmax), fv = fin.value, sv = srch.value, gv = flg.value;
      term = txt.value.trim().toLowerCase();
      const matches = term ? matcher(term) : null;
      shown = pool.filter(i => {
        const t = T[i];
        if (lo !== null && (t.r === null || t.r < lo)) return false;
        if (hi !== null && (t.r === null || t.r > hi)) return false;
        if (fv && t.fin !== fv) return false;
        if (sv === "1+" ? t.ns < 1 : sv && t.ns !== Number(sv)) return false;
        if (gv === "flagged" ? !t.fl : gv === "none" ? t.fl : gv && !(t.fl & Number(gv))) return false;
        if (matches && !matches(t)) return false;
        if (sameQuestion && (t.g !== sameQuestion.g || t.id !== sameQuestion.id)) return false;
        return true;
      });
      const key = { rdesc: i => -(T[i].r ?? -1), rasc: i => T[i].r ?? 2, ns: i => -T[i].ns, nt: i => -(T[i].nt ?? 0) }[sort.value];
      if (key) shown.sort((a, b) => key(a) - key(b) || a - b);
      const ms = performance.now() - f0;
      count.replaceChildren(`${shown.length} of ${pool.length} trajectories` + (shown.length !== pool.length ? " match" : "") + ` · filtered in ${ms.toFixed(1)} ms`);
      if (sameQuestion) {
        const clear = el("button", { type: "button", id: "clear-group" }, `question ${sameQuestion.id} only ✕`);
        clear.addEventListener("click", () => { sameQuestion = null; applyFilters(); });
        count.append(" · ", clear);
      }
      root.dataset.shown = String(shown.length);
      root.dataset.filterMs = ms.toFixed(2);
      root.dataset.filterRuns = String(Number(root.dataset.filterRuns || 0) + 1);
      spacer.style.height = shown.length * ROW_H + "px";
      list.scrollTop = 0;
      renderRows(true);
      select(shown.length ? shown[0] : -1);
    }

    function rewardColour(r) {
      if (r === null) return "#9ca3af";
      const x = Math.max(0, Math.min(1, r));
      return `hsl(${Math.round(x * 130)}, 65%, ${x < 0.5 ? 45 : 38}%)`;
    }
    function rowKey(g, t) { // where a rollout comes from, in a few characters
      if (g.kind === "step") return `step ${g.step} #${t.i}`;
      if (g.kind === "val") return `val ${g.step} · ${t.id}`;
      return t.id || `#${t.i}`;
    }
    const rowPool = [];
    let rendered = "";
    function renderRows(force) {
      const first = Math.max(0, Math.floor(list.scrollTop / ROW_H) - 8);
      const last = Math.min(shown.length, Math.ceil((list.scrollTop + list.clientHeight) / ROW_H) + 8);
      const sig = first + ":" + last + ":" + selected;
      if (!force && sig === rendered) return;
      rendered = sig;
      for (let k = first; k < last; k++) {
        const slot = k - first;
        let row = rowPool[slot];
        if (!row) { row = el("div", { class: "row" }); rowPool.push(row); spacer.appendChild(row); }
        const i = shown[k], t = T[i];
        row.hidden = false;
        row.style.top = k * ROW_H + "px";
        row.dataset.index = String(i);
        row.className = i === selected ? "row sel" : "row";
        row.replaceChildren();
        const rw = el("span", { class: "badge rw" }, t.r === null ? "–" : t.r.toFixed(2)); rw.style.background = rewardColour(t.r);
        row.appendChild(rw);
        const g = D.groups[t.g];
        row.appendChild(el("span", { class: "k" }, rowKey(g, t)));
        row.appendChild(el("span", { class: "q" }, t.q));
        row.appendChild(el("span", { class: "badge" }, t.ns + " search" + (t.ns === 1 ? "" : "es")));
        row.appendChild(el("span", { class: "badge" }, t.fin));
        D.behaviour_names.forEach((n, b) => { if (t.fl & (1 << b)) row.appendChild(el("span", { class: "badge flag", title: FLAG_LABELS[n] }, n === "revision" ? "revises" : "re-searches")); });
      }
      for (let slot = last - first; slot < rowPool.length; slot++) rowPool[slot].hidden = true;
    }
    let pending = false;
    list.addEventListener("scroll", () => { if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; renderRows(false); }); } });
    spacer.addEventListener("click", ev => { const row = ev.target.closest(".row"); if (row) select(Number(row.dataset.index)); });
    list.addEventListener("keydown", ev => {
      if (ev.key !== "ArrowDown" && ev.key !== "ArrowUp") return;
      ev.preventDefault();
      const k = shown.indexOf(selected) + (ev.key === "ArrowDown" ? 1 : -1);
      if (k < 0 || k >= shown.length) return;
      select(shown[k]);
      if (k * ROW_H < list.scrollTop) list.scrollTop = k * ROW_H;
      else if ((k + 1) * ROW_H > list.scrollTop + list.clientHeight) list.scrollTop = (k + 1) * ROW_H - list.clientHeight;
    });

    function highlighted(text) {
      const frag = document.createDocumentFragment();
      if (!term) { frag.appendChild(document.createTextNode(text)); return frag; }
      const lower = text.toLowerCase();
      let pos = 0, at;
      while ((at = lower.indexOf(term, pos)) !== -1) {
        frag.appendChild(document.createTextNode(text.slice(pos, at)));
        frag.appendChild(el("mark", {}, text.slice(at, at + term.length)));
        pos = at + term.length;
      }
      frag.appendChild(document.createTextNode(text.slice(pos)));
      return frag;
    }
    function select(i) {
      selected = i;
      renderRows(true);
      detail.replaceChildren();
      if (i < 0) { detail.appendChild(el("p", { class: "hint" }, "No trajectory matches the filters.")); return; }
      const t = T[i], g = D.groups[t.g];
      const h = el("h3"); h.appendChild(highlighted(t.q)); detail.appendChild(h);
      const dl = el("dl");
      const add = (k, v) => { dl.appendChild(el("dt", {}, k)); const dd = el("dd"); if (v instanceof Node) dd.appendChild(v); else dd.textContent = v; dl.appendChild(dd); };
      add("from", `${g.label}, question ${t.id || "–"}, sample ${t.i}`);
      add("golden answers", highlighted(t.a.join(" | ") || "–"));
      add("reward", `${fmt(t.r)}  (F1 ${fmt(t.f1)}, EM ${fmt(t.em)}, valid format ${t.vf === null ? "–" : t.vf ? "yes" : "no"})`);
      add("reason", t.why || "–");
      add("finish", t.fin);
      add("searches", String(t.ns));
      if (t.nt !== null) add("model tokens", String(t.nt));
      if (t.grp) {
        const [n, mean, adv] = t.grp;
        const group = el("span", {}, `${n} rollouts of this question: mean reward ${fmt(mean)}, advantage ${adv >= 0 ? "+" : ""}${fmt(adv)} `);
        const show = el("button", { type: "button", id: "show-group" }, "show them");
        show.addEventListener("click", () => { sameQuestion = { g: t.g, id: t.id }; applyFilters(); });
        group.appendChild(show);
        add("GRPO group", group);
      }
      if (t.ev.length) add("flagged", t.ev.join("; "));
      for (const [k, v] of Object.entries(t.x || {})) add(k, fmt(v));
      detail.appendChild(dl);
      for (const [code, content, closed] of t.s) {
        const box = el("div", { class: `seg seg-${code}` + (closed === 0 ? " open" : "") });
        let tag = SEG_NAMES[code];
        if (code === "r") tag += " · inserted by the system · masked from the loss";
        if (closed === 0) tag += " · never closed";
        box.appendChild(el("span", { class: "tag" }, tag));
        box.appendChild(highlighted(code === "o" ? content : content.replace(/^[ \t]*\n|\n\s*$/g, "")));
        detail.appendChild(box);
      }
      detail.scrollTop = 0;
    }

    let timer = null;
    txt.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(applyFilters, 150); });
    src.addEventListener("change", () => { sameQuestion = null; applyFilters(); });
    for (const c of [fin, srch, flg, sort]) c.addEventListener("change", applyFilters);
    for (const c of [rmin, rmax]) c.addEventListener("input", applyFilters);
    onStepClick = step => { // the rollouts of the nearest logged step
      let gi = -1;
      for (const i of stepGroups) if (gi < 0 || Math.abs(D.groups[i].step - step) < Math.abs(D.groups[gi].step - step)) gi = i;
      if (gi < 0) return;
      src.value = String(gi); sameQuestion = null; applyFilters();
      document.getElementById("browser").scrollIntoView();
    };
    applyFilters();
  }
  root.dataset.loadMs = (performance.now() - t0).toFixed(1);
  root.dataset.readyAt = performance.now().toFixed(1); // since navigation start: parse + render
  root.dataset.ready = "1";
})();
