// cadre dashboard: helpers shared by every page.
// Data is only ever put into the page with textContent or attributes,
// never parsed as HTML markup, so file contents and model text render as text.
"use strict";

const cadre = (() => {
  let csrf = "";
  let auth = "loopback";

  // Builds an element: el("td", {class: "x"}, "text", child, ...).
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "onclick") node.addEventListener("click", value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  async function session() {
    const response = await fetch("/ui/session", { credentials: "same-origin" });
    if (response.ok) {
      const info = await response.json();
      csrf = info.csrf;
      auth = info.auth;
    }
    const logout = document.getElementById("logout");
    if (logout && auth === "token") {
      logout.hidden = false;
      logout.addEventListener("click", async () => {
        await request("POST", "/logout");
        window.location.assign("/login");
      });
    }
  }

  // A request to the daemon; throws an Error carrying the API's message.
  async function request(method, path, body) {
    const init = { method, credentials: "same-origin", headers: {} };
    if (method !== "GET") init.headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    if (response.status === 401) {
      window.location.assign("/login");
      throw new Error("not logged in");
    }
    const type = response.headers.get("content-type") || "";
    const data = type.includes("json") ? await response.json() : await response.text();
    if (!response.ok) {
      const message = data && data.error ? data.error.message : String(data);
      const error = new Error(message || response.statusText);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  function usd(value) {
    if (value === null || value === undefined) return "-";
    return "$" + Number(value).toFixed(value < 1 ? 4 : 2);
  }

  function age(seconds) {
    const delta = Math.max(0, Math.floor(Date.now() / 1000 - seconds));
    if (delta < 60) return delta + "s";
    if (delta < 3600) return Math.floor(delta / 60) + "m";
    if (delta < 86400) return Math.floor(delta / 3600) + "h";
    return Math.floor(delta / 86400) + "d";
  }

  function time(seconds) {
    return seconds ? new Date(seconds * 1000).toLocaleString() : "-";
  }

  function showError(error) {
    const box = document.getElementById("error");
    if (!box) return;
    box.textContent = error ? String(error.message || error) : "";
    box.hidden = !error;
  }

  const TERMINAL = ["completed", "needs_human", "failed", "cancelled"];

  // A bar whose width is a share of `max` (set through the CSSOM, which the
  // Content-Security-Policy allows, unlike style attributes).
  function bar(value, max, kind) {
    const outer = el("span", { class: "bar " + (kind || "") });
    const inner = el("span", { class: "fill" });
    inner.style.width = (max > 0 ? Math.min(100, (100 * value) / max) : 0) + "%";
    outer.append(inner);
    return outer;
  }

  return { el, clear, session, request, usd, age, time, showError, TERMINAL, bar };
})();
