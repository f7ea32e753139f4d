"use strict";
(function () {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const specs = JSON.parse(document.getElementById("report-specs").textContent);
  function cell(row, value, cls) {
    const td = document.createElement("td");
    td.textContent = value === null || value === undefined ? "" : String(value);
    if (cls) td.className = cls;
    row.appendChild(td);
  }
  document.querySelectorAll("nav button").forEach(function (b) {
    b.addEventListener("click", function () {
      document.querySelectorAll("nav button").forEach(function (x) { x.classList.remove("active"); });
      document.querySelectorAll("section").forEach(function (s) { s.classList.remove("active"); });
      b.classList.add("active");
      document.getElementById(b.dataset.view).classList.add("active");
    });
  });
  const opts = {renderer: "svg", actions: false, ast: true};
  if (window.vega && window.vega.expressionInterpreter) opts.expr = window.vega.expressionInterpreter;
  window.__charts = [];
  Object.keys(specs).forEach(function (name) {
    window.__charts.push(window.vegaEmbed("#chart-" + name, specs[name], opts));
  });
  const cells = document.querySelector("#cells tbody");
  data.cells.forEach(function (c) {
    const tr = document.createElement("tr");
    [c.cell, c.value, c.n, c.errors, c.cost, c.flags.join(", ")].forEach(function (v) { cell(tr, v); });
    cells.appendChild(tr);
  });
  const bd = document.querySelector("#breakdown-cells tbody");
  data.breakdown.cells.forEach(function (c) {
    const tr = document.createElement("tr");
    [c.cell, c.n, c.errors, c.error_patterns, c.p50, c.p95, c.cost_per_item].forEach(function (v) { cell(tr, v); });
    bd.appendChild(tr);
  });
  const ag = document.querySelector("#breakdown-agents tbody");
  if (ag) data.breakdown.agents.forEach(function (a) {
    const tr = document.createElement("tr");
    [a.cell, a.agent, a.success_rate, a.n, a.mean_latency_ms, a.cost].forEach(function (v) { cell(tr, v); });
    ag.appendChild(tr);
  });
  function show(view) {
    document.querySelector("nav button[data-view=" + view + "]").click();
  }
  const dc = document.querySelector("#diff-changes tbody");
  const linked = new Set();
  if (dc && data.diff) data.diff.changes.forEach(function (c) {
    const tr = document.createElement("tr");
    const t = c.test || null;
    const mark = c.verdict === "improvement" ? "improved" : (c.verdict === "regression" ? "regressed" : "");
    [mark, c.cell, c.metric + (c.direction === "lower" ? " \u2193" : ""), c.old, c.new, c.change,
     t ? "[" + t.ci_low + ", " + t.ci_high + "]" : "-", t ? t.p_value : "-", t ? t.n : "-"].forEach(function (v) { cell(tr, v); });
    const td = document.createElement("td");
    // the items are the cell's, whatever the metric: listed on its first row only
    const flips = linked.has(c.cell) ? {fixed: [], broken: []} :
      ((data.diff.flipped || {})[c.cell] || {fixed: [], broken: []});
    linked.add(c.cell);
    [["broken", flips.broken], ["fixed", flips.fixed]].forEach(function (pair) {
      pair[1].forEach(function (id) {
        const a = document.createElement("button");
        a.className = "flip-link " + pair[0];
        a.textContent = (pair[0] === "broken" ? "\u2717 " : "\u2713 ") + id;
        a.addEventListener("click", function () {
          document.getElementById("item-cell").value = c.cell;
          document.getElementById("item-search").value = id;
          renderItems();
          show("items");
        });
        td.appendChild(a);
      });
    });
    tr.appendChild(td);
    dc.appendChild(tr);
  });
  const di = document.querySelector("#diff-items tbody");
  if (di && data.diff) (data.diff.side_by_side || []).forEach(function (f) {
    const tr = document.createElement("tr");
    tr.className = f.after ? "" : "wrong";
    cell(tr, f.cell); cell(tr, f.id); cell(tr, f.before ? "right" : "wrong"); cell(tr, f.after ? "right" : "wrong");
    cell(tr, f.target, "text"); cell(tr, f.output_before, "text"); cell(tr, f.output_after, "text");
    di.appendChild(tr);
  });
  function fill(select, values) {
    values.forEach(function (v) {
      const o = document.createElement("option"); o.value = v; o.textContent = v; select.appendChild(o);
    });
  }
  const uniq = function (xs) { return Array.from(new Set(xs)).sort(); };
  fill(document.getElementById("item-cell"), uniq(data.items.map(function (i) { return i.cell; })));
  fill(document.getElementById("item-category"), uniq(data.items.map(function (i) { return i.category; })));
  const body = document.querySelector("#item-table tbody");
  function renderItems() {
    const q = document.getElementById("item-search").value.toLowerCase();
    const c = document.getElementById("item-cell").value;
    const cat = document.getElementById("item-category").value;
    const wrong = document.getElementById("item-wrong").checked;
    const errored = document.getElementById("item-errored").checked;
    body.replaceChildren();
    let shown = 0;
    data.items.forEach(function (i) {
      if (c && i.cell !== c) return;
      if (cat && i.category !== cat) return;
      if (wrong && (i.correct || i.error)) return;
      if (errored && !i.error) return;
      if (q && ![i.id, i.prompt, i.output, i.target, i.error].some(function (t) { return t && String(t).toLowerCase().includes(q); })) return;
      const tr = document.createElement("tr");
      tr.className = i.error ? "errored" : (i.correct ? "" : "wrong");
      cell(tr, i.cell); cell(tr, i.sample ? i.id + " #" + i.sample : i.id); cell(tr, i.category);
      cell(tr, i.error ? "error" : (i.correct ? "yes" : "no")); cell(tr, i.score);
      cell(tr, i.prompt, "text"); cell(tr, i.output, "text"); cell(tr, i.target, "text"); cell(tr, i.error, "text");
      body.appendChild(tr);
      shown += 1;
    });
    document.getElementById("item-count").textContent = shown + " of " + data.items.length + " rows";
  }
  ["item-search", "item-cell", "item-category", "item-wrong", "item-errored"].forEach(function (id) {
    document.getElementById(id).addEventListener("input", renderItems);
  });
  renderItems();
  const fa = document.getElementById("flip-a"), fb = document.getElementById("flip-b");
  const only = document.getElementById("flip-only");
  // a side is one model at one revision: the page's own first, then the other revisions
  const sides = [], sideItems = {};
  function addSides(rev, items, own) {
    const systems = [];
    items.forEach(function (i) {
      const key = rev + "\u0000" + i.system;
      if (!sideItems[key]) { sideItems[key] = []; systems.push(i.system); }
      sideItems[key].push(i);
    });
    (own ? data.models.filter(function (m) { return sideItems[rev + "\u0000" + m]; }) : systems.sort()).forEach(function (m) {
      sides.push({key: rev + "\u0000" + m, label: own ? m : m + " @ " + rev});
    });
  }
  addSides(data.revision, data.items, true);
  Object.keys(data.other_items || {}).forEach(function (rev) { addSides(rev, data.other_items[rev], false); });
  [fa, fb].forEach(function (select) {
    sides.forEach(function (s) {
      const o = document.createElement("option");
      o.value = s.label; o.textContent = s.label; select.appendChild(o);
    });
  });
  const ranked = data.leaderboard.map(function (e) { return e.name; }).filter(function (m) { return data.models.includes(m); });
  if (ranked.length > 1) { fa.value = ranked[0]; fb.value = ranked[1]; }
  else if (sides.length > 1) { fb.value = sides[1].label; }
  const flipBody = document.querySelector("#flip-table tbody");
  function sideOf(select) {
    const s = sides.find(function (x) { return x.label === select.value; });
    return s ? sideItems[s.key] : [];
  }
  function renderFlips() {
    const pairs = {};
    [[sideOf(fa), 0], [sideOf(fb), 1]].forEach(function (side) {
      side[0].forEach(function (i) {
        if (i.sample || i.error) return;
        const key = i.benchmark + "\u0000" + i.id;
        (pairs[key] = pairs[key] || [null, null])[side[1]] = i;
      });
    });
    const rows = [];
    let flips = 0;
    Object.keys(pairs).forEach(function (k) {
      const x = pairs[k][0], y = pairs[k][1];
      if (fa.value === fb.value || !x || !y) return;
      const flip = x.correct !== y.correct;
      if (flip) flips += 1;
      if (flip || !only.checked) rows.push([x, y]);
    });
    // A right and B wrong, then the reverse, then both wrong, then both right
    function rank(p) { return p[0].correct !== p[1].correct ? (p[0].correct ? 0 : 1) : (p[0].correct ? 3 : 2); }
    rows.sort(function (p, q) { return (rank(p) - rank(q)) || p[0].benchmark.localeCompare(q[0].benchmark) || p[0].id.localeCompare(q[0].id); });
    flipBody.replaceChildren();
    rows.forEach(function (p) {
      const tr = document.createElement("tr");
      if (p[0].correct !== p[1].correct) tr.className = p[0].correct ? "broken" : "fixed";
      cell(tr, p[0].benchmark); cell(tr, p[0].id); cell(tr, p[0].correct ? "right" : "wrong");
      cell(tr, p[1].correct ? "right" : "wrong"); cell(tr, p[0].target || p[1].target, "text");
      cell(tr, p[0].output, "text"); cell(tr, p[1].output, "text");
      flipBody.appendChild(tr);
    });
    document.getElementById("flip-count").textContent = flips + " flips" + (only.checked ? "" : ", " + rows.length + " items");
  }
  [fa, fb, only].forEach(function (el) { el.addEventListener("input", renderFlips); });
  renderFlips();
})();
