// guard dashboard: polls /api/dashboard and renders it. No framework, no
// build step, no third-party code; every string from the API is inserted as
// text (never as HTML), since job names and log lines come from CI. The
// Content-Security-Policy forbids inline styles, so colours are classes.
"use strict";

const CATEGORIES = ["dependency", "test", "build", "timeout", "resource", "network", "permission", "other"];
const POLL_MS = 2000;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  if (s < 86400) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " d ago";
}

function category(c) {
  if (!c) return el("span", { class: "muted" }, "unexplained");
  return el("span", { class: `cat bg-${CATEGORIES.includes(c) ? c : "other"}` }, c);
}

function fill(tableId, rows, empty) {
  const body = document.querySelector(`#${tableId} tbody`);
  const cols = document.querySelectorAll(`#${tableId} thead th`).length;
  body.replaceChildren();
  if (!rows.length) {
    body.append(el("tr", {}, el("td", { colspan: cols, class: "muted" }, empty)));
    return;
  }
  for (const cells of rows) body.append(el("tr", {}, ...cells.map((c) => el("td", {}, c))));
}

function tiles(d) {
  const t = document.getElementById("tiles");
  const failed = d.jobs.filter((j) => j.status === "failed").length;
  const healed = d.jobs.filter((j) => j.outcome === "rerun-scheduled" || j.outcome === "healed").length;
  const items = [
    ["jobs processed", d.jobs_processed],
    ["queued", d.queue_depth],
    ["recent failures", failed],
    ["heals under way or worked", healed],
    ["re-runs scheduled", d.scheduled_reruns],
    ["dead letters", d.dead_letters],
  ];
  t.replaceChildren(...items.map(([k, v]) => el("div", { class: "tile" }, el("b", {}, v), el("span", { class: "muted" }, k))));
}

function jobs(d) {
  fill("jobs", d.jobs.map((j) => {
    const job = j.job || {};
    const name = el("div", {},
      el("div", {}, job.job_name || "?"),
      el("div", { class: "muted small" }, `${job.platform} · ${job.repository}` + (job.attempt ? ` · attempt ${job.attempt}` : "")));
    const diag = el("div", {}, category(j.category),
      j.failure_type ? el("div", { class: "small" }, j.failure_type) : null,
      j.category ? el("div", { class: "muted small" }, `confidence ${(j.confidence * 100).toFixed(0)}% · ${j.rule || ""}`) : null);
    const ev = el("pre", { class: "evidence" });
    for (const e of (j.evidence || []).slice(0, 4)) {
      ev.append(el("span", { class: "ln" }, String(e.line).padStart(5) + "  "), e.text, "\n");
    }
    const action = el("div", {}, j.strategy || el("span", { class: "muted" }, "—"),
      ...(j.actions || []).map((a) => el("div", { class: "muted small" }, a)));
    const notes = (j.notes || []).length
      ? el("details", {}, el("summary", { class: "small" }, `${j.notes.length} note(s)`), ...j.notes.map((n) => el("div", { class: "small" }, n)))
      : null;
    const outcome = el("div", {}, el("span", { class: "pill" + (/healed|passed|rerun-scheduled|flaky/.test(j.outcome) ? " ok" : "") }, j.outcome || "?"), notes);
    return [el("span", { title: new Date(j.processed_ms).toISOString() }, ago(j.processed_ms)), name, diag, ev, action, outcome];
  }), "no job yet — point a platform's webhooks at this daemon");
}

function chart(d) {
  const W = 960, H = 160, pad = 24;
  const hours = d.by_hour;
  const max = Math.max(1, ...hours.map((h) => CATEGORIES.reduce((s, c) => s + (h.counts[c] || 0), 0)));
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("width", "100%");
  const bw = (W - pad) / Math.max(1, hours.length);
  hours.forEach((h, i) => {
    let y = H - pad;
    for (const c of CATEGORIES) {
      const n = h.counts[c] || 0;
      if (!n) continue;
      const bh = (n / max) * (H - 2 * pad);
      y -= bh;
      const r = document.createElementNS(ns, "rect");
      r.setAttribute("x", pad + i * bw + 1);
      r.setAttribute("y", y);
      r.setAttribute("width", Math.max(1, bw - 2));
      r.setAttribute("height", bh);
      r.setAttribute("class", `fill-${c}`);
      const title = document.createElementNS(ns, "title");
      title.textContent = `${n} ${c} · ${new Date(h.hour_ms).toLocaleString()}`;
      r.append(title);
      svg.append(r);
    }
    if (i % 6 === 0) {
      const t = document.createElementNS(ns, "text");
      t.setAttribute("x", pad + i * bw);
      t.setAttribute("y", H - 6);
      t.textContent = new Date(h.hour_ms).getHours() + ":00";
      svg.append(t);
    }
  });
  const top = document.createElementNS(ns, "text");
  top.setAttribute("x", 0);
  top.setAttribute("y", pad);
  top.textContent = String(max);
  svg.append(top);
  document.getElementById("chart").replaceChildren(svg);
  document.getElementById("legend").replaceChildren(...CATEGORIES.map((c) => el("span", {}, el("i", { class: `bg-${c}` }), c)));
}

function rest(d) {
  fill("flaky", d.flaky.map((f) => [f.test, f.count, ago(f.last_ms)]), "no flaky test seen");
  fill("breakers", d.breakers.map((b) => [`${b.repository} · ${b.job} · ${b.strategy}`,
    el("span", { class: "pill" + (b.state === "open" ? " bad" : "") }, b.state), b.consecutive_failures]), "no breaker yet");
  fill("budgets", d.budgets.map((b) => [`${b.repository} · ${b.job} · ${b.commit.slice(0, 10)}`, `${b.used}/${b.max}`]), "no re-run spent");
  fill("plugins", d.plugins.map((p) => [el("div", {}, p.id, el("div", { class: "muted small" }, p.kind)), p.calls,
    p.calls ? `${p.avg_ms.toFixed(1)} / ${p.max_ms.toFixed(1)} ms` : "—", p.failures, p.denials,
    el("span", { class: "pill" + (p.quarantined ? " bad" : " ok") }, p.quarantined ? "quarantined" : "healthy")]), "no plugin");
  fill("candidates", d.candidates.map((c) => [c.id, el("code", {}, c.template), c.count]), "nothing waiting");
}

async function tick() {
  const live = document.getElementById("live");
  try {
    const token = sessionStorage.getItem("guard-token");
    const headers = token ? { Authorization: "Bearer " + token } : {};
    const r = await fetch("/api/dashboard", { cache: "no-store", headers });
    if (r.status === 401) {
      // [server] api_token is set: ask once per browser session.
      const t = window.prompt("guard API token ([server] api_token)");
      if (t) sessionStorage.setItem("guard-token", t);
      throw new Error("the API needs a token");
    }
    if (!r.ok) throw new Error(r.status + " " + (await r.text()));
    const d = await r.json();
    document.getElementById("version").textContent = "v" + d.version;
    document.getElementById("dryrun").hidden = !d.dry_run;
    tiles(d); jobs(d); chart(d); rest(d);
    live.textContent = "live · updated " + new Date().toLocaleTimeString();
    live.className = "pill ok";
  } catch (e) {
    live.textContent = "cannot reach guard: " + e.message;
    live.className = "pill bad";
  }
}

tick();
setInterval(tick, POLL_MS);
