// cadre dashboard: one job, live over its event stream.
"use strict";

(() => {
  const { el, clear, request, usd, showError, TERMINAL, bar } = cadre;
  const jobId = decodeURIComponent(window.location.pathname.split("/")[2] || "");
  const TIER_ORDER = ["codemod", "haiku", "sonnet", "opus"];
  const state = { report: null, files: [], costs: [], patch: null, verdicts: new Map(), selected: null, events: [] };
  const charts = {};
  let refreshTimer = null;

  const safeClass = (name) => String(name || "").toLowerCase().replace(/[^a-z0-9_-]/g, "");
  const tierRank = (tier) => {
    const i = TIER_ORDER.indexOf(tier);
    return i < 0 ? TIER_ORDER.length : i;
  };

  function finalTier(file) {
    return file.status === "needs_human" ? "human" : file.current_tier;
  }

  function renderHeader() {
    const r = state.report;
    document.title = `cadre: ${r.instruction}`;
    document.getElementById("instruction").textContent = r.instruction;
    const status = document.getElementById("status");
    status.textContent = r.status;
    status.className = "status " + safeClass(r.status);
    document.getElementById("reason").textContent = r.reason;
    document.getElementById("workspace").textContent = r.workspace;
    document.getElementById("job-id").textContent = r.job_id;
    const count = (s) => state.files.filter((f) => f.status === s).length;
    document.getElementById("count-accepted").textContent = count("accepted");
    document.getElementById("count-human").textContent = count("needs_human");
    document.getElementById("count-running").textContent = count("running");
    document.getElementById("count-total").textContent = state.files.length;
    document.getElementById("cost").textContent = usd(r.cost.total_usd);
    document.getElementById("budget").textContent = usd(r.cost.budget_usd);
    const holder = document.getElementById("cost-bar");
    clear(holder);
    if (r.cost.budget_usd) {
      holder.append(bar(r.cost.total_usd, r.cost.budget_usd, r.cost.total_usd > r.cost.budget_usd ? "over" : ""));
    }
    const terminal = TERMINAL.includes(r.status);
    document.getElementById("cancel").disabled = terminal;
    document.getElementById("apply").disabled = !terminal || r.status === "cancelled";
  }

  function renderHuman() {
    const humans = state.files.filter((f) => f.status === "needs_human");
    document.getElementById("human-section").hidden = humans.length === 0;
    const body = document.getElementById("human");
    clear(body);
    for (const f of humans) {
      body.append(el("tr", {},
        el("td", {}, el("button", { type: "button", class: "link", onclick: () => select(f.subtask_id) }, f.path)),
        el("td", {}, f.current_tier), el("td", {}, f.reason)));
    }
  }

  function renderGrid() {
    const grid = document.getElementById("files");
    clear(grid);
    for (const f of state.files) {
      const cell = el("button", {
        type: "button",
        role: "listitem",
        class: `cell ${safeClass(f.status)} tier-${safeClass(finalTier(f))}` +
          (state.selected === f.subtask_id ? " selected" : ""),
        title: `${f.path}: ${f.status} at ${finalTier(f)}`,
        "data-path": f.path,
        "data-status": f.status,
        "aria-label": `${f.path}, ${f.status}, ${finalTier(f)}`,
        onclick: () => select(f.subtask_id),
      }, f.path);
      grid.append(cell);
    }
  }

  function diffFor(path) {
    if (!state.patch) return null;
    const header = `diff --git a/${path} b/${path}\n`;
    const start = state.patch.indexOf(header);
    if (start < 0) return null;
    const next = state.patch.indexOf("\ndiff --git a/", start + header.length);
    return state.patch.slice(start, next < 0 ? undefined : next + 1);
  }

  function diffBlock(text) {
    const pre = el("pre", { class: "diff" });
    for (const line of text.split("\n")) {
      let kind = "";
      if (line.startsWith("+") && !line.startsWith("+++")) kind = "add";
      else if (line.startsWith("-") && !line.startsWith("---")) kind = "del";
      else if (line.startsWith("@@")) kind = "hunk";
      pre.append(el("span", { class: kind }, line), "\n");
    }
    return pre;
  }

  function renderFile() {
    const f = state.files.find((x) => x.subtask_id === state.selected);
    const section = document.getElementById("file-section");
    section.hidden = !f;
    if (!f) return;
    document.getElementById("file-title").textContent = f.path;
    const status = document.getElementById("file-status");
    status.textContent = `${f.status} · ${finalTier(f)}`;
    status.className = "status " + safeClass(f.status);
    document.getElementById("file-reason").textContent = f.reason;
    const body = document.getElementById("attempts");
    clear(body);
    for (const a of f.attempts) {
      body.append(el("tr", {},
        el("td", { class: "num" }, a.ordinal), el("td", {}, a.tier), el("td", {}, a.model),
        el("td", {}, a.outcome), el("td", {}, a.failure || ""),
        el("td", {}, el("div", { class: "feedback" }, a.error || "")),
        el("td", { class: "num" }, `${a.input_tokens + a.cache_read_tokens} / ${a.output_tokens}`),
        el("td", { class: "num" }, usd(a.cost_usd))));
    }
    const old = document.getElementById("file-diff");
    const text = diffFor(f.path);
    const replacement = text ? diffBlock(text) : el("pre", { class: "muted" },
      state.patch === null ? "The diff appears when the job has finished." : "No change to this file.");
    replacement.id = "file-diff";
    old.replaceWith(replacement);
  }

  function select(subtaskId) {
    state.selected = subtaskId;
    renderGrid();
    renderFile();
    document.getElementById("file-section").scrollIntoView({ block: "nearest" });
  }

  function tiersSeen() {
    const tiers = new Set();
    for (const f of state.files) {
      tiers.add(f.start_tier);
      f.attempts.forEach((a) => tiers.add(a.tier));
    }
    Object.keys(state.report ? state.report.cost.by_tier : {}).forEach((t) => tiers.add(t));
    return [...tiers].filter(Boolean).sort((a, b) => tierRank(a) - tierRank(b) || a.localeCompare(b));
  }

  function renderFunnel() {
    const rows = new Map(tiersSeen().map((t) => [t, { started: 0, accepted: 0, escalated: 0 }]));
    for (const f of state.files) {
      const order = [];
      f.attempts.forEach((a) => { if (order[order.length - 1] !== a.tier) order.push(a.tier); });
      new Set(order).forEach((t) => rows.has(t) && rows.get(t).started++);
      order.slice(0, -1).forEach((t) => rows.has(t) && rows.get(t).escalated++);
      if (f.status === "accepted" && rows.has(f.current_tier)) rows.get(f.current_tier).accepted++;
    }
    const body = document.getElementById("funnel");
    clear(body);
    for (const [tier, r] of rows) {
      body.append(el("tr", { "data-tier": tier }, el("td", {}, tier), el("td", { class: "num" }, r.started),
        el("td", { class: "num" }, r.accepted), el("td", { class: "num" }, r.escalated)));
    }
    const humans = state.files.filter((f) => f.status === "needs_human").length;
    body.append(el("tr", { "data-tier": "human" }, el("td", {}, "human"), el("td", { class: "num" }, humans),
      el("td", { class: "num" }, "-"), el("td", { class: "num" }, "-")));
  }

  function renderCosts() {
    const c = state.report.cost;
    const max = Math.max(c.total_usd, c.all_top_tier_usd, c.budget_usd || 0);
    const body = document.getElementById("costs");
    clear(body);
    const line = (label, value, kind) => body.append(el("tr", {}, el("td", {}, label),
      el("td", { class: "num" }, usd(value)), el("td", {}, bar(value || 0, max, kind))));
    for (const tier of tiersSeen()) if (tier in c.by_tier) line(`tier ${tier}`, c.by_tier[tier]);
    for (const [role, value] of Object.entries(c.by_role)) line(`role ${role}`, value);
    line("total", c.total_usd, c.budget_usd && c.total_usd > c.budget_usd ? "over" : "");
    line("all at the top tier", c.all_top_tier_usd, "top");
    if (c.budget_usd) line("budget", c.budget_usd, "top");
  }

  function chart(key, holder, title, series, data) {
    if (typeof uPlot === "undefined") return;
    const node = document.getElementById(holder);
    const width = Math.max(240, node.clientWidth || 400);
    if (charts[key]) charts[key].destroy();
    clear(node);
    charts[key] = new uPlot({
      title, width, height: 220, scales: { x: { time: true } },
      series: [{}, ...series], axes: [{}, { size: 60 }],
    }, data, node);
  }

  const PALETTE = { codemod: "#7b61ff", haiku: "#2aa198", sonnet: "#268bd2", opus: "#d33682" };

  const ROLE_DASH = { planner: [8, 4], worker: [], reviewer: [2, 3] };
  const ROLE_ORDER = ["planner", "worker", "reviewer"];

  // Cumulative cost of every model call (planner, workers, reviewer) from the
  // ledger, one line per tier and role, their total, and the references.
  function renderCostChart() {
    const points = state.costs;
    const keys = [];
    for (const p of points) {
      const key = `${p.tier} ${p.role}`;
      if (!keys.some((k) => k.key === key)) keys.push({ key, tier: p.tier, role: p.role });
    }
    const roleRank = (r) => { const i = ROLE_ORDER.indexOf(r); return i < 0 ? ROLE_ORDER.length : i; };
    keys.sort((a, b) => tierRank(a.tier) - tierRank(b.tier) || roleRank(a.role) - roleRank(b.role));
    const times = [...new Set(points.map((p) => p.at))].sort((a, b) => a - b);
    if (!times.length) return;
    if (times.length === 1) times.unshift(times[0] - 1);
    const sums = new Map(keys.map((k) => [k.key, 0]));
    const columns = keys.map(() => []);
    const total = [];
    let i = 0;
    let running = 0;
    for (const t of times) {
      while (i < points.length && points[i].at <= t) {
        const key = `${points[i].tier} ${points[i].role}`;
        sums.set(key, sums.get(key) + points[i].cost_usd);
        running += points[i].cost_usd;
        i++;
      }
      keys.forEach((k, n) => columns[n].push(sums.get(k.key)));
      total.push(running);
    }
    const c = state.report.cost;
    const series = keys.map((k) => ({
      label: k.key, stroke: PALETTE[k.tier] || "#555", width: 2, dash: ROLE_DASH[k.role] || [],
    }));
    const data = [times, ...columns];
    series.push({ label: "total", stroke: "#1d2330", width: 2 });
    data.push(total);
    series.push({ label: "all top tier", stroke: "#9aa3b2", dash: [6, 4] });
    data.push(times.map(() => c.all_top_tier_usd));
    if (c.budget_usd) {
      series.push({ label: "budget", stroke: "#c0392b", dash: [2, 3] });
      data.push(times.map(() => c.budget_usd));
    }
    chart("cost", "cost-chart", "cumulative USD by tier and role (every model call)", series, data);
  }

  function renderCharts() {
    renderCostChart();

    const done = state.events
      .filter((e) => e.kind === "subtask_status" && ["accepted", "needs_human", "skipped", "cancelled"].includes(e.data.status))
      .map((e) => e.at);
    if (state.files.length && done.length) {
      const start = state.report ? Math.min(...state.events.map((e) => e.at)) : done[0];
      const xs = [start, ...done];
      const ys = [state.files.length, ...done.map((_, k) => Math.max(0, state.files.length - k - 1))];
      chart("burndown", "burndown-chart", "files not finished", [{ label: "remaining", stroke: "#2f6fd6", width: 2 }], [xs, ys]);
    }
  }

  function renderReview() {
    const holder = document.getElementById("review");
    if (state.patch === null) return;
    clear(holder);
    holder.className = "";
    const ordered = [...state.files].sort((a, b) =>
      (b.status === "needs_human") - (a.status === "needs_human"));
    for (const f of ordered) {
      const text = diffFor(f.path);
      const verdict = state.verdicts.get(f.path);
      if (!text && !verdict && f.status !== "needs_human") continue;
      const head = el("h3", {}, f.path, " ");
      if (verdict) head.append(el("span", { class: "verdict-" + safeClass(verdict.verdict) }, verdict.verdict));
      if (f.status === "needs_human") head.append(el("span", { class: "status needs_human" }, "needs a human"));
      holder.append(el("div", { class: "review-file", "data-path": f.path }, head,
        verdict && verdict.comment ? el("p", { class: "muted" }, verdict.comment) : null,
        f.status === "needs_human" ? el("p", {}, f.reason) : null,
        text ? diffBlock(text) : null));
    }
  }

  async function refresh() {
    clearTimeout(refreshTimer);
    refreshTimer = null;
    try {
      const [report, files, costs] = await Promise.all([
        request("GET", `/v1/jobs/${jobId}`),
        request("GET", `/v1/jobs/${jobId}/files`),
        request("GET", `/v1/jobs/${jobId}/costs`),
      ]);
      state.report = report;
      state.files = files.data;
      state.costs = costs.data;
      if (["completed", "needs_human"].includes(report.status) && state.patch === null) {
        try {
          state.patch = await request("GET", `/v1/jobs/${jobId}/diff`);
        } catch (error) {
          if (error.status !== 409) throw error;
          state.patch = "";
        }
      }
      renderHeader();
      renderHuman();
      renderGrid();
      renderFile();
      renderFunnel();
      renderCosts();
      renderCharts();
      renderReview();
      showError(null);
    } catch (error) {
      showError(error);
    }
  }

  function scheduleRefresh() {
    if (!refreshTimer) refreshTimer = setTimeout(refresh, 400);
  }

  function listen() {
    const live = document.getElementById("live");
    const log = document.getElementById("log");
    const source = new EventSource(`/v1/jobs/${jobId}/events`);
    const onEvent = (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch (error) { return; }
      state.events.push(event);
      if (event.kind === "review_verdict" && event.data && event.data.path) {
        state.verdicts.set(event.data.path, event.data);
      }
      log.append(el("div", { "data-kind": event.kind },
        `${new Date(event.at * 1000).toLocaleTimeString()} ${event.kind} ${event.message}`));
      log.scrollTop = log.scrollHeight;
      scheduleRefresh();
    };
    source.onmessage = onEvent;
    for (const kind of ["job_status", "subtask_status", "file_skipped", "path_rejected", "routed",
      "attempt_started", "attempt_finished", "escalated", "backoff", "integration_check",
      "review_verdict", "budget_exhausted", "budget_estimate", "applied", "note"]) {
      source.addEventListener(kind, onEvent);
    }
    source.onopen = () => { live.textContent = "(live)"; };
    source.onerror = () => {
      // The stream ends when the job is terminal; do not reconnect then.
      if (state.report && TERMINAL.includes(state.report.status)) {
        source.close();
        live.textContent = "(finished)";
        scheduleRefresh();
      } else {
        live.textContent = "(reconnecting…)";
      }
    };
  }

  async function act(button, question, method, path, body, done) {
    if (!window.confirm(question)) return;
    button.disabled = true;
    const result = document.getElementById("action-result");
    try {
      const answer = await request(method, path, body);
      result.textContent = done(answer);
      scheduleRefresh();
    } catch (error) {
      showError(error);
      button.disabled = false;
    }
  }

  document.addEventListener("DOMContentLoaded", async () => {
    await cadre.session();
    const cancel = document.getElementById("cancel");
    cancel.addEventListener("click", () => act(cancel, "Cancel this job?", "POST",
      `/v1/jobs/${jobId}/cancel`, undefined, (a) => `cancel requested; status ${a.status}`));
    const apply = document.getElementById("apply");
    apply.addEventListener("click", () => {
      const branch = document.getElementById("branch").value.trim();
      if (!branch) { showError(new Error("name the new branch first")); return; }
      act(apply, `Apply this job's patch to the new branch ${branch}?`, "POST",
        `/v1/jobs/${jobId}/apply`, { branch }, () => `applied to branch ${branch}`);
    });
    await refresh();
    listen();
  });
})();
