// cadre dashboard: `cadre stats` as a page, from GET /v1/stats.
"use strict";

(() => {
  const { el, clear, request, usd, showError } = cadre;

  function pct(value) {
    return (100 * value).toFixed(1) + "%";
  }

  function classRow(c) {
    return el("tr", { "data-class": `${c.complexity}/${c.error_cost}/${c.tier}` },
      el("td", {}, c.complexity), el("td", {}, c.error_cost), el("td", {}, c.tier),
      el("td", { class: "num" }, c.attempts), el("td", { class: "num" }, c.passed),
      el("td", { class: "num" }, pct(c.success_rate), " ", cadre.bar(c.success_rate, 1, "")),
      el("td", { class: "num" }, usd(c.cost_usd)));
  }

  function codemodRow(c) {
    return el("tr", { "data-codemod": "" },
      el("td", { class: "num" }, c.attempts), el("td", { class: "num" }, c.accepted),
      el("td", { class: "num" }, pct(c.acceptance_rate), " ", cadre.bar(c.acceptance_rate, 1, "")),
      el("td", { class: "num" }, usd(c.saved_usd)));
  }

  function estimates(l) {
    const table = el("table", { class: "estimates" },
      el("thead", {}, el("tr", {}, el("th", {}, "start"), el("th", { class: "num" }, "n"),
        el("th", { class: "num" }, "p"), el("th", { class: "num" }, "solves"),
        el("th", { class: "num" }, "cost/file"), el("th", { class: "num" }, "cost/solve"))));
    const body = el("tbody");
    for (const s of l.starts) {
      body.append(el("tr", { class: s.eligible ? "" : "muted" },
        el("td", {}, s.tier, s.tier === l.learned_tier ? " ✓" : ""),
        el("td", { class: "num" }, Math.round(s.trials)),
        el("td", { class: "num" }, s.p_success.toFixed(2)),
        el("td", { class: "num" }, pct(s.solve_probability)),
        el("td", { class: "num" }, usd(s.expected_cost_usd)),
        el("td", { class: "num" }, s.cost_per_solve_usd === null ? "never" : usd(s.cost_per_solve_usd))));
    }
    table.append(body);
    return table;
  }

  function learnedRow(l) {
    return el("tr", { "data-learned": l.class },
      el("td", {}, el("code", {}, l.class)),
      el("td", {}, l.static_tier),
      el("td", { class: "num" }, `${l.static_samples} / ${l.min_samples}`),
      el("td", {}, l.learned_tier || el("span", { class: "muted" }, "not enough samples")),
      el("td", {}, estimates(l), el("div", { class: "muted" }, l.reason)));
  }

  function since() {
    const value = document.getElementById("since").value;
    if (!value) return null;
    const seconds = Math.floor(Date.parse(value + "T00:00:00Z") / 1000);
    return Number.isFinite(seconds) ? seconds : null;
  }

  async function load() {
    const query = new URLSearchParams();
    const from = since();
    if (from !== null) query.set("since", String(from));
    try {
      const q = query.toString();
      const s = await request("GET", q ? `/v1/stats?${q}` : "/v1/stats");
      document.getElementById("totals").textContent =
        `${s.subtasks} files with worker attempts: ${s.accepted} accepted, ` +
        `${s.needs_human} need a human, ${s.escalated} escalated (${pct(s.escalation_rate)}). ` +
        `Mean worker cost per accepted file ${usd(s.mean_cost_per_accepted_usd)}.`;
      const codemod = document.getElementById("codemod");
      clear(codemod);
      if (s.codemod) codemod.append(codemodRow(s.codemod));
      const classes = document.getElementById("classes");
      clear(classes);
      s.classes.forEach((c) => classes.append(classRow(c)));
      document.getElementById("classes-empty").hidden = s.classes.length > 0;
      const learned = document.getElementById("learned");
      clear(learned);
      s.learned.forEach((l) => learned.append(learnedRow(l)));
      document.getElementById("learned-empty").hidden = s.learned.length > 0;
      const adaptive = s.learned.length ? s.learned[0].adaptive : false;
      document.getElementById("adaptive").textContent = adaptive
        ? "routing.adaptive is on: new files start at the learned tier."
        : "routing.adaptive is off: new files start at the static tier; these are what history recommends.";
      showError(null);
    } catch (error) {
      showError(error);
    }
  }

  document.addEventListener("DOMContentLoaded", async () => {
    await cadre.session();
    document.getElementById("reload").addEventListener("click", load);
    load();
  });
})();
