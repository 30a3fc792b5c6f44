// tunebench dashboard: renders window.TUNEBENCH (data.js, written by the site_build rule from
// results/summary.json) with Chart.js. Plain script, no modules: it must work from file://.
(function () {
  "use strict";
  const D = window.TUNEBENCH || null;
  const COLORS = { "0shot": "#4c78a8", "5shot": "#f58518", lora: "#54a24b", classic: "#b279a2", api: "#e45756", other: "#9d9d9d" };
  const DAYS_PER_MONTH = 365 / 12;
  window.TUNEBENCH_CHARTS = [];

  // ---------- small helpers ----------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    }
    for (const c of children.flat(Infinity)) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }
  function body(id) { return document.querySelector(`#${id} .body`); }
  function empty(id, what) {
    body(id).append(el("div", { class: "empty" }, `Not run yet: ${what}`));
  }
  function fmt(v, digits = 3) { return v === null || v === undefined ? "–" : Number(v).toFixed(digits); }
  // A p-value for people: "<0.001" below 0.001 (never a bare 0), else 3 significant digits (tunebench.compare.gate.format_p).
  function fmtP(p) {
    if (p === null || p === undefined) return "–";
    return p < 0.001 ? "<0.001" : String(Number(Number(p).toPrecision(3)));
  }
  function money(v) {
    if (v === null || v === undefined) return "–";
    if (v >= 100) return Math.round(v).toLocaleString("en-US");
    if (v >= 1) return v.toFixed(2);
    return Number(v).toPrecision(2);
  }
  // the classic baseline (TF-IDF + logistic regression) has an "adapter" too: its fitted pipeline
  function condition(cell) { return cell.model === "classic" ? "classic" : cell.adapter ? "lora" : cell.prompting; }
  function colorOf(key) { return COLORS[key] || COLORS.other; }

  // Chart.js has no error bars: this plugin draws each bar's confidence interval as a whisker.
  const whiskers = {
    id: "whiskers",
    afterDatasetsDraw(chart) {
      const { ctx } = chart;
      chart.data.datasets.forEach((ds, di) => {
        if (!ds.ci) return;
        const meta = chart.getDatasetMeta(di);
        const horizontal = chart.options.indexAxis === "y";
        const scale = horizontal ? chart.scales.x : chart.scales.y;
        meta.data.forEach((bar, i) => {
          const ci = ds.ci[i];
          if (!ci) return;
          const lo = scale.getPixelForValue(ci[0]);
          const hi = scale.getPixelForValue(ci[1]);
          const c = horizontal ? bar.y : bar.x;
          ctx.save();
          ctx.strokeStyle = "#222";
          ctx.lineWidth = 1.2;
          ctx.beginPath();
          if (horizontal) {
            ctx.moveTo(lo, c); ctx.lineTo(hi, c);
            ctx.moveTo(lo, c - 4); ctx.lineTo(lo, c + 4); ctx.moveTo(hi, c - 4); ctx.lineTo(hi, c + 4);
          } else {
            ctx.moveTo(c, lo); ctx.lineTo(c, hi);
            ctx.moveTo(c - 4, lo); ctx.lineTo(c + 4, lo); ctx.moveTo(c - 4, hi); ctx.lineTo(c + 4, hi);
          }
          ctx.stroke();
          ctx.restore();
        });
      });
    },
  };

  function chart(parent, config, tall) {
    const box = el("div", { class: tall ? "chart tall" : "chart" });
    const canvas = el("canvas");
    box.append(canvas);
    parent.append(box);
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options);
    const c = new Chart(canvas, config);
    window.TUNEBENCH_CHARTS.push(c);
    return c;
  }

  function table(columns, rows, sortable) {
    // columns: [{label, get(row) -> display, sort(row) -> comparable, num}]
    const t = el("table");
    const head = el("tr");
    const tbody = el("tbody");
    let order = { index: -1, dir: 1 };
    function fill() {
      tbody.replaceChildren();
      let shown = rows.slice();
      if (order.index >= 0) {
        const col = columns[order.index];
        const key = col.sort || col.get;
        shown.sort((a, b) => {
          const x = key(a), y = key(b);
          if (x === y) return 0;
          if (x === null || x === undefined) return 1;
          if (y === null || y === undefined) return -1;
          return (x < y ? -1 : 1) * order.dir;
        });
      }
      for (const r of shown) {
        tbody.append(el("tr", {}, columns.map((c) => {
          const v = c.get(r);
          return el("td", { class: c.num ? "num" : "" }, v instanceof Node ? v : (v === null || v === undefined ? "–" : v));
        })));
      }
    }
    columns.forEach((c, i) => {
      const th = el("th", { class: sortable ? "sortable" : "" }, c.label);
      if (sortable) th.addEventListener("click", () => {
        order = { index: i, dir: order.index === i ? -order.dir : (c.num ? -1 : 1) };
        fill();
      });
      head.append(th);
    });
    t.append(el("thead", {}, head), tbody);
    fill();
    return t;
  }

  // ---------- sections ----------
  function header() {
    const p = D.provenance;
    document.getElementById("run-line").textContent =
      `suite ${D.suite} · run ${p.started_at} → ${p.finished_at} · commit ${(p.git_commit || "not a git checkout").slice(0, 12)}` +
      (p.git_dirty ? " (uncommitted changes)" : "");
  }

  function leaderboard() {
    const primary = D.cells.filter((c) => c.primary);
    if (!primary.length) return empty("leaderboard", "no scores yet. Run `snakemake --cores 2 results/summary.json`.");
    const tasks = Object.keys(D.tasks);
    const keyOf = (c) => `${c.system}|${c.prompting}`;
    const rows = new Map();
    for (const c of primary) {
      if (!rows.has(keyOf(c))) rows.set(keyOf(c), { system: c.system, prompting: c.prompting, adapter: c.adapter, model: c.model, cells: {} });
      rows.get(keyOf(c)).cells[c.task] = c;
    }
    const cols = [
      { label: "system", get: (r) => r.system },
      { label: "condition", get: (r) => (r.adapter ? `${r.model === "classic" ? "TF-IDF" : "LoRA"} (${r.adapter})` : r.prompting) },
      ...tasks.map((t) => ({
        label: `${t} · ${D.tasks[t].primary_metric}`, num: true,
        sort: (r) => (r.cells[t] ? r.cells[t].value : null),
        get: (r) => {
          const c = r.cells[t];
          if (!c) return null;
          return el("span", {}, fmt(c.value), " ", el("span", { class: "ci" }, `[${fmt(c.ci_low)}, ${fmt(c.ci_high)}]`));
        },
      })),
    ];
    body("leaderboard").append(el("div", { class: "scroll" }, table(cols, [...rows.values()], true)));
  }

  function tasks() {
    const parent = body("tasks");
    const names = Object.keys(D.tasks).filter((t) => D.cells.some((c) => c.task === t && c.primary));
    if (!names.length) return empty("tasks", "no task scores yet.");
    for (const task of names) {
      const cells = D.cells.filter((c) => c.task === task && c.primary)
        .sort((a, b) => (a.system < b.system ? -1 : a.system > b.system ? 1 : a.shots - b.shots));
      const wrap = el("div");
      wrap.append(el("h3", {}, `${task} · ${cells[0].metric} (n=${cells[0].n})`));
      parent.append(wrap);
      chart(wrap, {
        type: "bar",
        data: {
          labels: cells.map((c) => `${c.system} · ${c.model === "classic" ? "TF-IDF" : c.adapter ? "LoRA" : c.prompting}`),
          datasets: [{
            label: cells[0].metric,
            data: cells.map((c) => c.value),
            ci: cells.map((c) => [c.ci_low, c.ci_high]),
            backgroundColor: cells.map((c) => colorOf(condition(c))),
          }],
        },
        options: {
          plugins: { legend: { display: false },
            tooltip: { callbacks: { afterLabel: (ctx) => `CI [${fmt(cells[ctx.dataIndex].ci_low)}, ${fmt(cells[ctx.dataIndex].ci_high)}]` } } },
          scales: { y: { beginAtZero: true, suggestedMax: 1 }, x: { ticks: { autoSkip: false, maxRotation: 40 } } },
        },
        plugins: [whiskers],
      });
    }
  }

  function errors() {
    const rows = (D.errors || []).filter((r) => r.wrong > 0);
    if (!rows.length) return empty("errors", "no wrong answers to classify yet.");
    for (const task of [...new Set(rows.map((r) => r.task))]) {
      const mine = rows.filter((r) => r.task === task);
      const classes = [...new Set(mine.flatMap((r) => Object.keys(r.errors)))];
      const info = D.tasks[task] || {};
      const coverage = info.test_of !== undefined ? ` · n=${info.evaluated} of ${info.test_of}` : "";
      const labels = info.labels ? ` · ${info.labels.length} labels` : "";
      body("errors").append(el("h3", {}, `${task}${labels}${coverage}`));
      body("errors").append(table([
        { label: "system", get: (r) => r.system },
        { label: "prompting", get: (r) => r.prompting },
        { label: "wrong of n", num: true, get: (r) => `${r.wrong} of ${r.n}`, sort: (r) => r.wrong },
        ...classes.map((k) => ({ label: k, num: true, get: (r) => String(r.errors[k] || 0), sort: (r) => r.errors[k] || 0 })),
        { label: "top confusions", get: (r) => r.confusions.slice(0, 3).map((c) => `${c.target} → ${c.answer} (${c.count})`).join("; ") },
      ], mine, true));
    }
  }

  function forgetting() {
    const reports = (D.comparisons || []).filter((r) => r.rows && r.rows.length);
    if (!reports.length) return empty("forgetting", "no fine-tuned system has been compared with its base yet.");
    for (const rep of reports) {
      const rows = rep.rows.filter((r) => r.primary);
      const wrap = el("div");
      wrap.append(el("h3", {}, `${rep.system} vs ${rep.base_system}`));
      body("forgetting").append(wrap);
      chart(wrap, {
        type: "bar",
        data: {
          labels: rows.map((r) => (r.role === "target" ? `${r.task} vs base ${r.base_prompting}` : `${r.task} (general)`)),
          datasets: [{
            label: "Δ pp",
            data: rows.map((r) => r.delta_pp),
            ci: rows.map((r) => [r.ci_low_pp, r.ci_high_pp]),
            backgroundColor: rows.map((r) => (r.ci_low_pp > 0 ? COLORS.lora : r.ci_high_pp < 0 ? COLORS.api : COLORS.other)),
          }],
        },
        options: { indexAxis: "y", plugins: { legend: { display: false } },
          scales: { x: { title: { display: true, text: "fine-tuned − base (pp)" },
            suggestedMin: Math.min(0, ...rows.map((r) => r.ci_low_pp)), suggestedMax: Math.max(0, ...rows.map((r) => r.ci_high_pp)) } } },
        plugins: [whiskers],
      });
      wrap.append(table([
        { label: "", get: (r) => el("span", { class: r.direction === "↗" ? "up" : r.direction === "↘" ? "down" : "" }, r.direction) },
        { label: "task", get: (r) => r.task },
        { label: "role", get: (r) => (r.role === "target" ? `target (vs base ${r.base_prompting})` : r.role) },
        { label: "metric", get: (r) => r.metric },
        { label: "base", num: true, get: (r) => fmt(r.base) },
        { label: "fine-tuned", num: true, get: (r) => fmt(r.finetuned) },
        { label: "Δ pp [CI]", num: true, get: (r) => `${r.delta_pp >= 0 ? "+" : ""}${fmt(r.delta_pp, 1)} [${fmt(r.ci_low_pp, 1)}, ${fmt(r.ci_high_pp, 1)}]` },
        { label: "p", num: true, get: (r) => fmtP(r.p_value), sort: (r) => r.p_value },
      ], rows, false));
    }
  }

  function gates() {
    const reports = (D.gates || []).filter((g) => g.baseline || (g.leakage || []).length);
    if (!reports.length) return empty("gates", "no stored baseline (tunebench baseline update --run-id ID).");
    for (const g of reports) {
      for (const leak of g.leakage || []) {
        body("gates").append(el("h3", {}, `${g.system}: `, el("span", { class: "badge FAIL" }, "FAIL"), " leakage"),
          el("p", { class: "flag" }, leak.message));
      }
      if (!g.baseline) continue;
      // a gate that compared nothing (no cell of this run in the baseline) passed nothing: not green
      const badge = g.rows.length ? el("span", { class: `badge ${g.gate}` }, g.gate)
        : el("span", { class: "badge", style: "background: var(--muted)" }, "NOT COMPARED");
      body("gates").append(el("h3", {}, `${g.system}: `, badge,
        ` vs ${g.baseline.file} (run ${g.baseline.run_id})`));
      body("gates").append(table([
        { label: "verdict", get: (r) => el("span", { class: `badge ${r.verdict}` }, r.verdict) },
        { label: "task", get: (r) => r.task }, { label: "prompting", get: (r) => r.prompting },
        { label: "metric", get: (r) => r.metric },
        { label: "baseline", num: true, get: (r) => fmt(r.baseline) }, { label: "current", num: true, get: (r) => fmt(r.current) },
        { label: "Δ pp", num: true, get: (r) => fmt(r.delta_pp, 1) }, { label: "p", num: true, get: (r) => fmtP(r.p_value), sort: (r) => r.p_value },
        { label: "MDE pp", num: true, get: (r) => r.mde_pp },
        { label: "why", get: (r) => r.why },
      ], g.rows.filter((r) => r.primary || r.verdict !== "PASS"), true));
    }
  }

  // The same TCO as tunebench/report/cost.py, at any daily volume.
  function tcoAt(row, costs, perDay) {
    if (row.cost_per_query_usd === null || row.tco_usd === null) return null;
    const days = costs.tco.months * DAYS_PER_MONTH;
    if (row.pricing !== "self_hosted") return row.cost_per_query_usd * perDay * days;  // api, api_batch
    const capacity = row.items_per_s * 86400 * costs.utilization;
    const machines = Math.max(1, Math.ceil(perDay / capacity));
    return machines * row.usd_per_hour * 24 * days + ((row.tco_breakdown || {}).training_usd || 0);
  }

  function cost() {
    const costs = D.costs;
    const rows = costs ? costs.rows.filter((r) => r.cost_per_query_usd !== null) : [];
    if (!rows.length) return empty("cost", "no priced cells (configs/pricing.yaml).");
    const parent = body("cost");
    parent.append(el("p", { class: "muted" },
      `Cost per query from measured tokens (API) or generation wall time (self-hosted); TCO over ${costs.tco.months} months: ` +
      `the API bills each query, self-hosted pays enough machines at ${Math.round(costs.utilization * 100)}% of measured throughput plus adapter training.`));
    const tasksSeen = [...new Set(rows.map((r) => r.task))];
    const scatterWrap = el("div");
    scatterWrap.append(el("h3", {}, `Quality vs cost per query (${costs.currency}, log scale)`));
    parent.append(scatterWrap);
    const palette = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2"];
    chart(scatterWrap, {
      type: "scatter",
      data: { datasets: tasksSeen.map((t, i) => ({
        label: t, backgroundColor: palette[i % palette.length], pointRadius: 5,
        data: rows.filter((r) => r.task === t).map((r) => ({ x: r.cost_per_query_usd, y: r.value, label: `${r.system} ${r.prompting}` })),
      })) },
      options: {
        scales: { x: { type: "logarithmic", title: { display: true, text: `${costs.currency} per query` },
          ticks: { callback: (v) => money(v), maxTicksLimit: 8 } },
          y: { beginAtZero: true, suggestedMax: 1, title: { display: true, text: "primary metric" } } },
        plugins: { tooltip: { callbacks: { label: (ctx) => `${ctx.raw.label}: ${fmt(ctx.raw.y)} at ${money(ctx.raw.x)}` } } },
      },
    });

    const tcoWrap = el("div");
    const input = el("input", { type: "number", id: "volume", min: "1", step: "1000", value: String(costs.tco.queries_per_day) });
    tcoWrap.append(el("h3", {}, `${costs.tco.months}-month TCO (${costs.currency})`),
      el("label", {}, "queries per day", input));
    parent.append(tcoWrap);
    const labels = rows.map((r) => `${r.system} · ${r.task} · ${r.prompting}`);
    const tcoChart = chart(tcoWrap, {
      type: "bar",
      data: { labels, datasets: [{ label: "TCO", data: rows.map((r) => tcoAt(r, costs, costs.tco.queries_per_day)),
        backgroundColor: rows.map((r) => (r.pricing !== "self_hosted" ? COLORS.api : COLORS["0shot"])) }] },
      options: { indexAxis: "y", plugins: { legend: { display: false } },
        scales: { x: { title: { display: true, text: costs.currency } }, y: { ticks: { autoSkip: false } } } },
    }, true);
    const totals = el("div");
    tcoWrap.append(totals);
    function update() {
      const perDay = Math.max(1, Number(input.value) || costs.tco.queries_per_day);
      tcoChart.data.datasets[0].data = rows.map((r) => tcoAt(r, costs, perDay));
      tcoChart.update();
      totals.replaceChildren(table([
        { label: "system", get: (r) => r.system }, { label: "task", get: (r) => r.task },
        { label: "prompting", get: (r) => r.prompting }, { label: "backend", get: (r) => r.backend },
        { label: "primary metric", num: true, get: (r) => `${r.metric} ${fmt(r.value)}`, sort: (r) => r.value },
        { label: "p50 s", num: true, get: (r) => r.latency_p50_s }, { label: "p95 s", num: true, get: (r) => r.latency_p95_s },
        { label: "TTFT p50 s", num: true, get: (r) => r.ttft_p50_s },
        { label: `${costs.currency}/query`, num: true, get: (r) => money(r.cost_per_query_usd), sort: (r) => r.cost_per_query_usd },
        { label: `TCO at ${perDay.toLocaleString("en-US")}/day`, num: true, get: (r) => money(tcoAt(r, costs, perDay)),
          sort: (r) => tcoAt(r, costs, perDay) },
      ], rows, true));
    }
    input.addEventListener("input", update);
    update();
  }

  function leakage() {
    const rows = D.leakage || [];
    if (!rows.length) return empty("leakage", "no leakage reports in this summary.");
    body("leakage").append(table([
      { label: "training set", get: (r) => r.train_set },
      { label: "systems", get: (r) => r.systems.join(", ") || "(few-shot source)" },
      { label: "evaluated on", get: (r) => r.eval_set }, { label: "n", num: true, get: (r) => r.n },
      { label: "exact", num: true, get: (r) => (r.checked ? r.exact : "–") },
      { label: "13-gram", num: true, get: (r) => (r.checked ? r.ngram : "–") },
      { label: "touched", num: true, get: (r) => (r.checked ? `${(100 * r.touched_share).toFixed(1)}%` : r.note),
        sort: (r) => r.touched_share },
      { label: "items", get: (r) => r.ids.join(", ") },
    ], rows, true));
  }

  function decision() {
    const dec = D.decision;
    if (!dec || !dec.tasks.length) return empty("decision", "no task scores to decide between yet.");
    const parent = body("decision");
    const set = Object.entries(dec.constraints).filter(([, v]) => v !== null);
    parent.append(el("p", { class: "muted" }, `Recommended: ${dec.rule}. Constraints: ` +
      (set.length ? set.map(([k, v]) => `${k} ${v}`).join(", ") : "none (set `decision:` in the config)") + "."));
    // tunebench.report.decision.ratio_phrase
    const ratioPhrase = (r) => (r === null ? "a cost per query that cannot be compared (one of them is not priced)"
      : r === 1 ? "the same cost per query" : r === 0 ? "no measurable cost per query"
        : r <= 0.5 ? `1/${Number((1 / r).toPrecision(2))} of the cost per query`
          : r < 1 ? `${Math.round(r * 100)}% of the cost per query` : `${Number(r.toPrecision(2))}x the cost per query`);
    const signed = (v) => `${v >= 0 ? "+" : ""}${fmt(v, 1)}`;  // as summary.md writes it
    const delta = (d) => `Δ ${signed(d.delta_pp)} pp [${signed(d.ci_low_pp)}, ${signed(d.ci_high_pp)}]`;
    for (const t of dec.tasks) {
      const pick = t.recommended;
      parent.append(el("h3", {}, `${t.task} · ${t.metric}`), el("p", { class: "decision" }, el("strong", {}, t.sentence)));
      parent.append(table([
        { label: "candidate", get: (c) => {
          const name = `${c.system} ${c.prompting}`;
          return pick && pick.system === c.system && pick.prompting === c.prompting ? el("strong", {}, `${name} ✓`) : name;
        }, sort: (c) => `${c.system} ${c.prompting}` },
        { label: t.metric, num: true, sort: (c) => c.value,
          get: (c) => (c.value === null ? "n/a" : el("span", {}, fmt(c.value), " ", el("span", { class: "ci" }, `[${fmt(c.ci_low)}, ${fmt(c.ci_high)}]`))) },
        { label: `${dec.currency}/1k`, num: true, get: (c) => money(c.usd_per_1k), sort: (c) => c.usd_per_1k },
        { label: "p95 s", num: true, get: (c) => (c.latency_p95_s === null ? null : Number(c.latency_p95_s.toPrecision(3))),
          sort: (c) => c.latency_p95_s },
        { label: "frontier", get: (c) => (c.frontier ? "yes" : "no") },
        { label: "beaten by (paired)", get: (c) => {
          const by = c.dominated_by;
          if (!by) return "–";
          const said = by.paired ? `${by.paired.verdict}, ${delta(by.paired)}` : "not paired";
          return `${by.system} ${by.prompting} (${said}; at ${ratioPhrase(by.cost_ratio)})`;
        } },
        { label: "vs best (paired)", get: (c) => (c.vs_best ? `${c.vs_best.verdict}, ${delta(c.vs_best)}` : "–") },
        { label: "constraints", get: (c) => (c.qualifies ? "met" : c.failed.join("; ")) },
        { label: "not comparable on", get: (c) => c.not_comparable.join(", ") || "–" },
      ], t.candidates, true));
    }
  }

  function agreement() {
    const reports = D.agreement || [];
    if (!reports.length) return empty("agreement", "no backend pair configured (agreement.pairs; make agreement).");
    for (const a of reports) {
      body("agreement").append(el("h3", {}, `${a.systems[0]} (${a.backends[0]}) vs ${a.systems[1]} (${a.backends[1]})`,
        a.flagged ? el("span", { class: "flag" }, "  ⚠ flagged") : ""));
      if (a.flagged) body("agreement").append(el("p", { class: "flag" }, a.flags.join("; ")));
      body("agreement").append(table([
        { label: "task", get: (r) => r.task }, { label: "prompting", get: (r) => r.prompting }, { label: "n", num: true, get: (r) => r.n },
        { label: "same answer", num: true, get: (r) => `${(100 * r.agreement_rate).toFixed(1)}%` },
        { label: "same output", num: true, get: (r) => `${(100 * r.exact_output_rate).toFixed(1)}%` },
        { label: "a", num: true, get: (r) => fmt(r.score_a) }, { label: "b", num: true, get: (r) => fmt(r.score_b) },
        { label: "Δ pp [CI]", num: true, get: (r) => `${fmt(r.delta_pp, 1)} [${fmt(r.ci_low_pp, 1)}, ${fmt(r.ci_high_pp, 1)}]` },
      ], a.rows, false));
    }
  }

  function provenance() {
    const p = D.provenance;
    const hw = p.hardware || {};
    const items = [
      ["commit", `${p.git_commit || "not a git checkout"}${p.git_dirty ? " (uncommitted changes)" : ""}`],
      ["config hash", (p.config_hash || "").slice(0, 16)],
      ["run", `${p.started_at} → ${p.finished_at} (summarized ${p.summarized_at})`],
      ["hardware", `${hw.cpu || "?"} (${hw.logical_cpus || "?"} CPUs, ${hw.memory_gb || "?"} GB)${hw.gpu ? ", GPU " + hw.gpu : ""}`],
      ["packages", Object.entries(p.packages || {}).filter(([, v]) => v).map(([k, v]) => `${k} ${v}`).join(", ")],
    ];
    body("provenance").append(el("dl", {}, items.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])));
  }

  if (!D) {
    for (const id of ["leaderboard", "tasks", "errors", "forgetting", "leakage", "gates", "cost", "decision", "agreement", "provenance"]) {
      empty(id, "no data.js next to this page: build it with `snakemake --cores 2 results/summary.json`.");
    }
    return;
  }
  Chart.defaults.font.size = 11;
  header();
  for (const [name, fn] of [["leaderboard", leaderboard], ["tasks", tasks], ["errors", errors], ["forgetting", forgetting], ["leakage", leakage], ["gates", gates],
    ["cost", cost], ["decision", decision], ["agreement", agreement], ["provenance", provenance]]) {
    try { fn(); } catch (err) {
      console.error(`section ${name}:`, err);
      body(name).append(el("div", { class: "empty" }, `This section could not be drawn: ${err.message}`));
    }
  }
  window.TUNEBENCH_READY = true;
})();
