// dataengine serve: four pages over one build, drawn from the JSON API. No dependencies, no build step.
// Every text from the build goes in through textContent (h() below), never as HTML.

const SVG = "http://www.w3.org/2000/svg";
const KEPT = "#2f6fb0";
const REJECTED = "#d9822b";
const BOUND = "#c62828";

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
}

function append(el, children) {
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

function fmt(x, digits = 3) {
  if (x === null || x === undefined) return "–";
  if (typeof x === "string") return x;
  if (Number.isInteger(x)) return x.toLocaleString("en");
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return x.toExponential(2);
  return Number(x.toPrecision(Math.max(digits, Math.ceil(Math.log10(a + 1)) + 2))).toString();
}

async function api(path, params) {
  const url = params ? `${path}?${params}` : path;
  const response = await fetch(url);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function sampleHref(id, status) {
  return `/sample/${encodeURIComponent(id)}` + (status ? `?status=${status}` : "");
}

function audioSrc(id, status) {
  return `/audio/${status}/${encodeURIComponent(id)}`;
}

function badge(status) {
  return h("span", { class: `badge ${status}` }, status);
}

function player(id, status, extra = {}) {
  return h("audio", { controls: true, preload: "none", src: audioSrc(id, status), ...extra });
}

function showError(where, error) {
  where.replaceChildren(h("p", { class: "error" }, String(error.message || error)));
}

// --- charts ---------------------------------------------------------------------------------------

function barChart(rows, { width = 420, label, parts, colors, href }) {
  // horizontal bars, one per row; parts = keys stacked left to right
  const lineH = 22, left = 170, right = 60;
  const max = Math.max(1, ...rows.map((r) => parts.reduce((a, p) => a + (r[p] || 0), 0)));
  const chart = s("svg", { width, height: rows.length * lineH + 6, class: "chart", role: "img" });
  rows.forEach((r, i) => {
    const y = i * lineH + 3;
    const name = s("text", { x: left - 6, y: y + 14, "text-anchor": "end", class: "label" }, r[label] ?? "–");
    chart.append(href ? linked(href(r), name) : name);
    let x = left, total = 0;
    parts.forEach((p, j) => {
      const w = ((r[p] || 0) / max) * (width - left - right);
      if (w > 0) chart.append(s("rect", { x, y, width: w, height: lineH - 6, fill: colors[j] }, s("title", {}, `${p}: ${r[p]}`)));
      x += w;
      total += r[p] || 0;
    });
    chart.append(s("text", { x: x + 5, y: y + 14, class: "value" }, fmt(total)));
  });
  return chart;
}

function linked(href, child) {
  const a = s("a", { href });
  a.append(child);
  return a;
}

function histogram(hist, { width = 300, height = 120 } = {}) {
  const m = { l: 36, r: 8, t: 16, b: 20 };
  const chart = s("svg", { width, height, class: "chart hist", role: "img", "data-metric": hist.metric });
  chart.append(s("text", { x: m.l, y: 11, class: "title" }, hist.metric));
  if (!hist.n || hist.lo === null) {
    chart.append(s("text", { x: m.l, y: height / 2, class: "muted" }, "no values"));
    return chart;
  }
  const bins = hist.kept.length;
  const totals = hist.kept.map((k, i) => k + hist.rejected[i]);
  const max = Math.max(1, ...totals);
  const bw = (width - m.l - m.r) / bins, ih = height - m.t - m.b;
  const x = (v) => m.l + ((v - hist.lo) / (hist.hi - hist.lo)) * (width - m.l - m.r);
  for (let i = 0; i < bins; i++) {
    const hk = (hist.kept[i] / max) * ih, hr = (hist.rejected[i] / max) * ih;
    const x0 = m.l + i * bw;
    const tip = `${fmt(hist.lo + i * (hist.hi - hist.lo) / bins)}…: ${hist.kept[i]} kept, ${hist.rejected[i]} rejected`;
    if (hk) chart.append(s("rect", { x: x0, y: m.t + ih - hk, width: Math.max(bw - 1, 1), height: hk, fill: KEPT }, s("title", {}, tip)));
    if (hr) chart.append(s("rect", { x: x0, y: m.t + ih - hk - hr, width: Math.max(bw - 1, 1), height: hr, fill: REJECTED }, s("title", {}, tip)));
  }
  chart.append(s("line", { x1: m.l, x2: width - m.r, y1: m.t + ih, y2: m.t + ih, class: "axis" }));
  chart.append(s("text", { x: m.l, y: height - 5, class: "tick" }, fmt(hist.lo)));
  chart.append(s("text", { x: width - m.r, y: height - 5, class: "tick", "text-anchor": "end" }, fmt(hist.hi)));
  chart.append(s("text", { x: m.l - 4, y: m.t + 8, class: "tick", "text-anchor": "end" }, fmt(max)));
  hist.bounds.forEach((b) => {
    const inside = b.value >= hist.lo && b.value <= hist.hi;
    const bx = inside ? x(b.value) : b.value < hist.lo ? m.l : width - m.r;
    const text = `${b.path.split(".")[1]} ${inside ? "" : b.value < hist.lo ? "← " : "→ "}${fmt(b.value)}`;
    if (inside) chart.append(s("line", { x1: bx, x2: bx, y1: m.t, y2: m.t + ih, stroke: BOUND, "stroke-dasharray": "3 2" }));
    chart.append(s("text", { x: bx, y: m.t + 9 + 10 * hist.bounds.indexOf(b), class: "bound", "text-anchor": bx > width / 2 ? "end" : "start" }, text));
  });
  return chart;
}

function legend() {
  return h("p", { class: "legend" }, h("span", { class: "swatch kept" }), "kept ", h("span", { class: "swatch rejected" }), "rejected ",
    h("span", { class: "swatch bound" }), "recipe bound");
}

// --- overview -------------------------------------------------------------------------------------

async function overviewPage(root) {
  const o = await api("/api/overview");
  const hours = (x) => `${fmt(x / 3600, 3)} h`;
  const stats = h("div", { class: "stats" },
    stat("kept", o.kept, `${hours(o.kept_seconds)} of audio`, "kept-count"),
    stat("rejected", o.rejected, `${o.rejected_with_audio} with audio (${hours(o.rejected_seconds)})`, "rejected-count"),
    stat("shards", o.shards, `recipe ${o.name}, seed ${o.seed}`),
    stat("tasks", o.tasks.length, o.tasks.map((t) => `${t.task} ${t.n}`).join(", ")));
  const funnelRows = o.funnel.map((f) => ({ stage: f.stage, passed: f.seen === null ? 0 : f.seen - f.dropped, dropped: f.dropped }));
  const reasons = h("ul", { class: "reasons" }, o.funnel.flatMap((f) => f.reasons.map((r) =>
    h("li", {}, h("a", { href: `/browse?status=rejected&stage=${encodeURIComponent(f.stage)}&reason=${encodeURIComponent(r.reason)}` },
      `${f.stage}/${r.reason}`), ` ${fmt(r.n)}`))));
  root.replaceChildren(
    h("h1", {}, `Build ${o.name}`),
    stats,
    h("section", { class: "row" },
      h("div", {}, h("h2", {}, "Funnel: seen → passed / dropped at each stage"),
        barChart(funnelRows, { label: "stage", parts: ["passed", "dropped"], colors: [KEPT, REJECTED], width: 480 }),
        o.funnel.some((f) => f.reasons.length) ? reasons : h("p", { class: "muted" }, "Nothing was rejected.")),
      h("div", {}, h("h2", {}, "Tasks"), barChart(o.tasks, { label: "task", parts: ["n"], colors: [KEPT], width: 380,
        href: (r) => `/browse?task=${encodeURIComponent(r.task)}` })),
      h("div", {}, h("h2", {}, "Voices"), barChart(o.voices, { label: "voice", parts: ["kept", "rejected"], colors: [KEPT, REJECTED], width: 420,
        href: (r) => `/browse?voice=${encodeURIComponent(r.voice)}` })),
      o.conditions.length ? h("div", {}, h("h2", {}, "Augmentation: conditions applied"),
        barChart(o.conditions, { label: "conditions", parts: ["kept", "rejected"], colors: [KEPT, REJECTED], width: 420,
          href: (r) => `/browse?conditions=${encodeURIComponent(r.conditions)}` })) : ""),
    h("h2", {}, "Length and metric distributions (kept and rejected, 1st–99th percentile; the end bins hold the rest)"),
    legend(),
    h("div", { class: "grid" }, o.histograms.map((x) => histogram(x))));
}

function stat(name, value, note, id) {
  return h("div", { class: "stat" }, h("div", { class: "value", id }, fmt(value)), h("div", { class: "name" }, name), h("div", { class: "note" }, note));
}

// --- browse ---------------------------------------------------------------------------------------

async function browsePage(root) {
  const facets = await api("/api/facets");
  const state = new URLSearchParams(location.search);
  const form = h("form", { class: "filters", id: "filters" });
  const select = (name, values) => h("label", {}, name,
    h("select", { name }, h("option", { value: "" }, "any"), values.map((v) => h("option", { value: v, selected: state.get(name) === String(v) }, v))));
  const rangeBox = h("div", { class: "ranges" });
  const addRange = (spec = "") => {
    const [metric = facets.metrics[0], lo = "", hi = ""] = spec.split(":");
    const row = h("div", { class: "range" },
      h("select", { name: "range-metric" }, facets.metrics.map((m) => h("option", { value: m, selected: m === metric }, m))),
      h("input", { name: "range-lo", type: "number", step: "any", value: lo, placeholder: "min" }),
      h("input", { name: "range-hi", type: "number", step: "any", value: hi, placeholder: "max" }),
      h("button", { type: "button", onclick: () => { row.remove(); run(0); } }, "×"));
    rangeBox.append(row);
  };
  state.getAll("range").forEach(addRange);
  form.append(
    ...["status", "task", "voice", "stage", "reason", "shard"].map((n) => select(n, facets[n])),
    ...(facets.conditions.length ? [select("conditions", facets.conditions)] : []),
    h("label", {}, "search", h("input", { name: "q", type: "search", value: state.get("q") || "", placeholder: "id or prompt" })),
    h("label", {}, "sort", h("select", { name: "sort" }, facets.sortable.map((c) => h("option", { value: c, selected: (state.get("sort") || "index") === c }, c)))),
    h("label", {}, "order", h("select", { name: "order" }, ["asc", "desc"].map((o) => h("option", { value: o, selected: state.get("order") === o }, o)))),
    h("label", {}, "rows", h("select", { name: "size" }, facets.page_sizes.map((n) => h("option", { value: n, selected: String(n) === (state.get("size") || "50") }, n)))),
    h("div", { class: "range-head" }, "metric ranges ", h("button", { type: "button", onclick: () => addRange() }, "+ range")),
    rangeBox,
    h("button", { type: "submit" }, "Apply"));
  const results = h("div", { id: "results" });
  root.replaceChildren(h("h1", {}, "Browse kept and rejected samples"), form, results);

  function query(page) {
    const p = new URLSearchParams();
    for (const el of form.querySelectorAll("select[name], input[name]")) {
      if (el.name.startsWith("range-")) continue;
      if (el.value) p.set(el.name, el.value);
    }
    for (const row of rangeBox.querySelectorAll(".range")) {
      const [m, lo, hi] = row.querySelectorAll("select, input");
      if (lo.value || hi.value) p.append("range", `${m.value}:${lo.value}:${hi.value}`);
    }
    if (page) p.set("page", page);
    return p;
  }

  async function run(page) {
    const p = query(page);
    history.replaceState(null, "", `/browse${p.size ? "?" + p : ""}`);
    results.replaceChildren(h("p", { class: "muted" }, "Querying…"));
    try {
      const data = await api("/api/samples", p);
      results.replaceChildren(table(data), pager(data, run));
    } catch (error) {
      showError(results, error);
    }
  }
  form.addEventListener("submit", (e) => { e.preventDefault(); run(0); });
  form.addEventListener("change", (e) => { if (!e.target.name.startsWith("range-")) run(0); });
  await run(Number(state.get("page") || 0));
}

function table(data) {
  const head = h("tr", {}, h("th", {}, ""), data.columns.map((c) => h("th", {}, c)));
  const rows = data.rows.map((r) => h("tr", { "data-id": r.id, "data-status": r.status },
    h("td", {}, r.status === "kept" || r.shard ? playButton(r.id, r.status) : ""),
    data.columns.map((c) => {
      const v = r[c];
      if (c === "id") return h("td", {}, h("a", { href: sampleHref(r.id, r.status) }, v));
      if (c === "status") return h("td", {}, badge(v));
      if (c === "prompt") return h("td", { class: "prompt", title: v || "" }, v && v.length > 80 ? v.slice(0, 80) + "…" : v);
      return h("td", { class: typeof v === "number" ? "num" : "" }, fmt(v));
    })));
  return h("div", { class: "scroll" }, h("p", { class: "count", id: "result-count" }, `${fmt(data.total)} samples`),
    h("table", { class: "samples" }, h("thead", {}, head), h("tbody", {}, rows)));
}

function playButton(id, status) {
  const button = h("button", { class: "play", type: "button", title: "play" }, "▶");
  button.addEventListener("click", () => {
    const audio = button.nextSibling || button.parentNode.appendChild(h("audio", { src: audioSrc(id, status), preload: "auto" }));
    if (audio.paused) audio.play().catch(() => {}); else audio.pause();
  });
  return button;
}

function pager(data, run) {
  const pages = Math.max(1, Math.ceil(data.total / data.page_size));
  return h("div", { class: "pager" },
    h("button", { type: "button", disabled: data.page === 0, onclick: () => run(data.page - 1) }, "‹ previous"),
    h("span", { id: "page-label" }, ` page ${data.page + 1} of ${pages} `),
    h("button", { type: "button", disabled: data.page + 1 >= pages, onclick: () => run(data.page + 1) }, "next ›"));
}

// --- one sample -----------------------------------------------------------------------------------

async function samplePage(root) {
  const id = decodeURIComponent(location.pathname.slice("/sample/".length));
  const status = new URLSearchParams(location.search).get("status");
  const d = await api(`/api/sample/${encodeURIComponent(id)}`, status ? `status=${status}` : "");
  const r = d.row;
  const title = h("h1", {}, `Sample ${r.id} `, badge(r.status));
  const why = r.status === "rejected"
    ? h("p", { class: "reject", id: "reject-reason" }, `Rejected by ${r.stage}: ${r.reason}`,
      r.value !== null ? ` (measured ${fmt(r.value)})` : "", r.detail ? ` — ${r.detail}` : "")
    : h("p", { class: "muted" }, `Kept in shards/${r.shard}, task ${r.task}, voice ${r.voice}, sha256 ${String(r.sha256).slice(0, 12)}…`);
  const media = d.has_audio
    ? h("div", { class: "media" },
      h("audio", { controls: true, preload: "metadata", src: audioSrc(r.id, r.status), id: "player" }),
      h("img", { class: "spectrogram", src: `/spectrogram/${r.status}/${encodeURIComponent(r.id)}`, alt: "spectrogram (0–8 kHz)" }),
      h("p", { class: "muted" }, `spectrogram: 0–8 kHz bottom to top, 10 ms per column, 80 dB range; ${fmt(r.duration_s)} s`))
    : h("p", { class: "muted" }, r.status === "rejected" ? "No audio stored: rejected before TTS spoke it, or the recipe set shards.keep_rejected_audio: false." : "No audio in the shards (shards.keep_audio: false).");
  const others = d.others.length ? h("p", {}, "The same id also appears as: ",
    d.others.map((o) => h("a", { href: sampleHref(r.id, o.status) }, `${o.status} (row ${o.index}) `))) : null;
  root.replaceChildren(...[title, why, others, media].filter(Boolean),
    h("div", { class: "row" }, h("div", {}, h("h2", {}, "Text"), text(d)), h("div", {}, h("h2", {}, "Metrics and the bounds they were judged by"), metricTable(d.metrics))));
}

function text(d) {
  const r = d.row;
  const conv = d.record && d.record.conversations;
  if (conv && conv.length) {
    return h("div", { class: "conversation", id: "conversation" },
      h("div", { class: "turn spoken" }, h("div", { class: "role" }, "prompt (what the voice says)"), r.prompt || ""),
      conv.map((turn) =>
      h("div", { class: `turn ${turn.role}` }, h("div", { class: "role" }, turn.role), tokens(turn.content))),
      h("p", { class: "muted" }, `${fmt(r.n_sound_tokens)} sound tokens (WhisperVQ, 25 per second).`));
  }
  return h("div", { class: "conversation", id: "conversation" },
    h("div", { class: "turn user" }, h("div", { class: "role" }, "prompt (spoken)"), r.prompt || ""),
    d.record && d.record.response ? h("div", { class: "turn assistant" }, h("div", { class: "role" }, "response"), d.record.response) : null,
    h("p", { class: "muted" }, "No sound tokens: the sample was rejected before it was formatted."));
}

function tokens(content) {
  // the sound-token span in monospace, wrapped; the rest as text
  const match = /<\|sound_start\|>.*?<\|sound_end\|>/s.exec(content);
  if (!match) return h("div", { class: "content" }, content);
  return h("div", { class: "content" }, content.slice(0, match.index),
    h("code", { class: "sound-tokens" }, match[0]), content.slice(match.index + match[0].length));
}

function metricTable(metrics) {
  const rows = metrics.map((m) => {
    const bounds = m.bounds.length ? m.bounds.map((b) => h("div", { class: b.role === "bound" && b.fires ? "fires" : "" },
      `${b.path} `, h("span", { class: "op" }, `${b.role === "bound" ? "fails if" : b.role === "gate" ? "applies if" : "short if"} ${b.trigger} ${fmt(b.limit)}`),
      b.fires === null ? "" : !b.applies ? " (does not apply here)" : b.role === "bound" ? (b.fires ? " ✗" : " ✓") : b.fires ? " (yes)" : " (no)",
      b.note ? h("span", { class: "note" }, ` ${b.note}`) : "")) : h("span", { class: "muted" }, "no recipe bound");
    return h("tr", { "data-metric": m.metric }, h("td", {}, m.metric), h("td", { class: "num" }, fmt(m.value, 4)), h("td", {}, bounds));
  });
  return h("table", { class: "metrics", id: "metrics" }, h("thead", {}, h("tr", {}, h("th", {}, "metric"), h("th", {}, "value"), h("th", {}, "recipe bound"))), h("tbody", {}, rows));
}

// --- threshold explorer ---------------------------------------------------------------------------

async function thresholdsPage(root) {
  const bounds = await api("/api/bounds");
  const params = new URLSearchParams(location.search);
  const changes = new Map();
  let focus = params.get("focus") || (bounds[0] && bounds[0].path);
  for (const b of bounds) if (params.has(b.path)) changes.set(b.path, Number(params.get(b.path)));
  const results = h("div", { class: "explore-results", id: "explore-results" });
  const list = h("div", { class: "bounds" });
  let stage = null;
  for (const b of bounds) {
    if (b.stage !== stage) { stage = b.stage; list.append(h("h3", {}, stage)); }
    list.append(boundRow(b));
  }
  root.replaceChildren(h("h1", {}, "Threshold explorer"),
    h("p", { class: "muted" }, "Move a recipe bound: the counts come from the metrics stored in the manifest, judged by the filters' own rules. Nothing is rebuilt."),
    h("div", { class: "explorer" }, list, results));
  const focused = list.querySelector(`[data-bound="${CSS.escape(focus || "")}"]`);
  if (focused) list.scrollTop = focused.offsetTop - list.offsetTop - 60;

  function boundRow(b) {
    const [lo, hi] = b.range;
    const step = b.integer ? 1 : (hi - lo) / 400 || 0.001;
    const current = changes.has(b.path) ? changes.get(b.path) : b.value;
    const slider = h("input", { type: "range", min: lo, max: hi, step, value: current, "aria-label": b.path });
    const number = h("input", { type: "number", step: b.integer ? 1 : "any", value: current, class: "bound-value" });
    const reset = h("button", { type: "button", class: "reset", title: "back to the build's value" }, "↺");
    const row = h("div", { class: "bound", "data-bound": b.path },
      h("div", { class: "name" }, h("strong", {}, b.key), h("span", { class: "muted" }, ` ${b.role === "bound" ? "fails if" : b.role === "gate" ? "applies if" : "short if"} ${b.statistic} ${b.trigger} value`),
        b.note ? h("div", { class: "note" }, b.note) : null),
      h("div", { class: "controls" }, slider, number, reset, h("span", { class: "muted" }, ` build: ${fmt(b.value)}`)));
    const set = (value, from) => {
      if (from !== slider) slider.value = value;
      if (from !== number) number.value = value;
      if (Number(value) === b.value) changes.delete(b.path); else changes.set(b.path, Number(value));
      row.classList.toggle("changed", changes.has(b.path));
      focus = b.path;
      schedule();
    };
    slider.addEventListener("input", () => set(slider.value, slider));
    number.addEventListener("change", () => { if (number.value !== "" && Number.isFinite(Number(number.value))) set(number.value, number); });
    reset.addEventListener("click", () => set(b.value, null));
    row.addEventListener("focusin", () => { if (focus !== b.path) { focus = b.path; schedule(); } });
    row.classList.toggle("changed", changes.has(b.path));
    return row;
  }

  let timer = null, seq = 0;
  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(run, 120);
  }
  async function run() {
    const p = new URLSearchParams();
    for (const [k, v] of changes) p.set(k, v);
    if (focus) p.set("focus", focus);
    history.replaceState(null, "", `/thresholds?${p}`);
    const mine = ++seq;
    results.classList.add("busy");
    try {
      const r = await api("/api/explore", p);
      if (mine === seq) results.replaceChildren(...explained(r));
    } catch (error) {
      if (mine === seq) showError(results, error);
    } finally {
      if (mine === seq) results.classList.remove("busy");
    }
  }
  await run();
}

function explained(r) {
  if (r.error) return [h("p", { class: "error", id: "explore-error" }, `Not a valid recipe: ${r.error}`)];
  const t = r.totals;
  const big = h("div", { class: "stats" },
    stat("would drop", t.dropped, "kept samples the changed bounds reject", "explore-dropped"),
    stat("would add", t.added, "tokenizer rejects that would be kept", "explore-added"),
    stat("would pass", t.may_add, "then still face the later stages (never measured there)", "explore-may-add"),
    stat("kept", r.kept_after, `now ${fmt(r.kept_now)}`, "explore-kept"));
  const tableOf = (rows, label) => rows.length ? h("table", { class: "counts" },
    h("thead", {}, h("tr", {}, h("th", {}, label), h("th", {}, "drop"), h("th", {}, "add"), h("th", {}, "pass, later stages decide"))),
    h("tbody", {}, rows.map((x) => h("tr", {}, h("td", {}, x[label] || "–"), h("td", { class: "num" }, fmt(x.dropped)), h("td", { class: "num" }, fmt(x.added)), h("td", { class: "num" }, fmt(x.may_add))))))
    : h("p", { class: "muted" }, "no change");
  const out = [big];
  if (t.borderline) out.push(h("p", { class: "muted" }, `${fmt(t.borderline)} sample(s) sit within the manifest's rounding of a bound and are not counted.`));
  out.push(h("div", { class: "row" },
    h("div", {}, h("h3", {}, "By task (added samples get their task at rebuild)"), tableOf(r.by_task, "task")),
    h("div", {}, h("h3", {}, "By voice"), tableOf(r.by_voice, "voice")),
    h("div", {}, h("h3", {}, "By reason (new reason for drops)"), tableOf(r.by_reason, "reason"))));
  if (r.nearest) out.push(nearest(r.nearest));
  const yaml = h("textarea", { readOnly: true, rows: 14, id: "recipe-yaml", spellcheck: false }, r.yaml);
  const copied = h("span", { class: "muted" });
  const copy = h("button", { type: "button", id: "copy-recipe" }, "Copy as recipe");
  copy.addEventListener("click", async () => {
    try { await navigator.clipboard.writeText(r.yaml); copied.textContent = " copied"; }
    catch { yaml.select(); copied.textContent = " selected: press Ctrl-C"; }
  });
  out.push(h("h3", {}, "The recipe to rebuild with"), h("div", {}, copy, copied), yaml);
  return out;
}

function nearest(n) {
  const label = n.role === "bound" ? ["fails", "passes"] : n.role === "gate" ? ["gate applies", "gate does not apply"] : ["short", "not short"];
  const side = (rows, name, key) => h("div", { class: "side", id: `nearest-${key}` }, h("h4", {}, `${name} (${n.statistic} ${key === "fires" ? "" : "not "}${n.trigger} ${fmt(n.limit)})`),
    rows.length ? rows.map((x) => h("div", { class: "near", "data-id": x.id },
      h("div", {}, h("a", { href: sampleHref(x.id, x.status) }, x.id), " ", badge(x.status), x.change ? h("span", { class: `change ${x.change}` }, ` ${x.change.replace("_", " ")}`) : "",
        h("span", { class: "muted" }, ` ${n.statistic} = ${fmt(x.statistic, 4)}`), x.reason ? h("span", { class: "muted" }, ` (${x.stage}/${x.reason})`) : ""),
      x.has_audio ? player(x.id, x.status) : h("span", { class: "muted" }, "no audio stored"))) : h("p", { class: "muted" }, "none"));
  return h("div", { class: "nearest" }, h("h3", {}, `Nearest samples to ${n.path} on both sides`),
    h("div", { class: "row" }, side(n.fires, label[0], "fires"), side(n.holds, label[1], "holds")));
}

// --- router ---------------------------------------------------------------------------------------

const pages = { overview: overviewPage, browse: browsePage, sample: samplePage, thresholds: thresholdsPage };

function pageName(path) {
  if (path === "/") return "overview";
  if (path.startsWith("/sample/")) return "sample";
  return path.slice(1);
}

async function start() {
  const name = pageName(location.pathname);
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === name);
  const root = document.getElementById("app");
  try {
    await pages[name](root);
    document.body.dataset.ready = name;
  } catch (error) {
    showError(root, error);
    document.body.dataset.ready = "error";
  }
}

start();
