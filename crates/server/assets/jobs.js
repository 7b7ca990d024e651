// cadre dashboard: the job list and the submit form.
"use strict";

(() => {
  const { el, clear, request, usd, age, showError, TERMINAL } = cadre;
  const PAGE = 20;
  let cursor = "";
  let nextCursor = null;
  let timer = null;

  // The listing's progress (files by state, cost so far), computed by the
  // daemon for the whole page in one query.
  function progress(job) {
    const p = job.progress;
    if (!p) return null;
    return {
      accepted: p.accepted,
      needsHuman: p.needs_human,
      inFlight: p.in_flight,
      total: p.files,
      cost: p.cost_usd,
    };
  }

  function row(job, p) {
    const budget = job.budget_usd;
    const cost = p ? p.cost : null;
    const costCell = el("td", { class: "num" }, usd(cost), " / ", usd(budget));
    if (budget) costCell.append(" ", cadre.bar(cost || 0, budget, cost > budget ? "over" : ""));
    return el("tr", { "data-job": job.job_id, "data-status": job.status },
      el("td", {}, el("span", { class: "status " + job.status }, job.status)),
      el("td", {}, el("a", { href: `/jobs/${job.job_id}` }, job.instruction || job.job_id),
        el("div", { class: "muted" }, job.workspace)),
      el("td", { class: "num" }, p ? `${p.accepted} / ${p.total}` : "-"),
      el("td", { class: "num" }, p ? p.needsHuman : "-"),
      el("td", { class: "num" }, p ? p.inFlight : "-"),
      costCell,
      el("td", { class: "num wide", title: cadre.time(job.created_at) }, age(job.created_at)),
      el("td", { class: "num wide" }, job.priority));
  }

  async function load() {
    clearTimeout(timer);
    const filter = document.getElementById("status-filter").value;
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (cursor) query.set("cursor", cursor);
    if (filter) query.set("status", filter);
    try {
      const page = await request("GET", `/v1/jobs?${query}`);
      nextCursor = page.next_cursor;
      const shown = page.data;
      const body = document.getElementById("jobs");
      clear(body);
      shown.forEach((job) => body.append(row(job, progress(job))));
      document.getElementById("empty").hidden = shown.length > 0;
      document.getElementById("next-page").disabled = !nextCursor;
      document.getElementById("first-page").disabled = !cursor;
      showError(null);
      if (page.data.some((job) => !TERMINAL.includes(job.status))) {
        timer = setTimeout(load, 2000);
      }
    } catch (error) {
      showError(error);
      timer = setTimeout(load, 5000);
    }
  }

  async function submit(event) {
    event.preventDefault();
    const form = event.target;
    const value = (name) => form.elements[name].value.trim();
    const body = {
      instruction: value("instruction"),
      workspace: value("workspace"),
      files: value("files").split("\n").map((s) => s.trim()).filter(Boolean),
      check: value("check") || null,
      file_check: value("file_check") || null,
      priority: Number(value("priority") || 0),
      batch: form.elements.batch.checked,
      budget_usd: value("budget_usd") ? Number(value("budget_usd")) : null,
      require_budget_fit: form.elements.require_budget_fit.checked,
    };
    if (!window.confirm(`Submit this job on ${body.workspace}?\n\n${body.instruction}`)) return;
    try {
      const answer = await request("POST", "/v1/jobs", body);
      window.location.assign(`/jobs/${answer.job_id}`);
    } catch (error) {
      showError(error);
    }
  }

  document.addEventListener("DOMContentLoaded", async () => {
    await cadre.session();
    document.getElementById("submit").addEventListener("submit", submit);
    document.getElementById("status-filter").addEventListener("change", () => { cursor = ""; load(); });
    document.getElementById("next-page").addEventListener("click", () => {
      if (nextCursor) { cursor = nextCursor; load(); }
    });
    document.getElementById("first-page").addEventListener("click", () => { cursor = ""; load(); });
    load();
  });
})();
