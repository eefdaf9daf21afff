/* Shared page helpers: JSON API calls that surface RFC 9457 problems as readable messages. */
"use strict";
window.zhixin = (function () {
  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || ("HTTP " + status));
      this.status = status;
      this.problem = problem || {};
    }
  }
  async function api(method, url, body) {
    const init = { method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const r = await fetch(url, init);
    const text = await r.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = { detail: text }; }
    if (!r.ok) throw new ApiError(r.status, data);
    return data;
  }
  function show(el, msg) {
    if (!el) return;
    el.textContent = msg || "";
    el.hidden = !msg;
  }
  function readFile(input) {
    return new Promise((resolve, reject) => {
      const f = input.files && input.files[0];
      if (!f) { reject(new Error(document.body.dataset.lang === "en" ? "choose a file first" : "请先选择文件")); return; }
      const fr = new FileReader();
      fr.onload = () => resolve(String(fr.result));
      fr.onerror = () => reject(fr.error);
      fr.readAsText(f);
    });
  }
  function en() { return document.body.dataset.lang === "en"; }
  // An area's messages from its JSON block (<script type="application/json" id=...>), with
  // {name} placeholders; an unknown key shows itself.
  function messages(id) {
    const node = document.getElementById(id);
    const M = node ? JSON.parse(node.textContent) : {};
    return (k, vars) => {
      let s = M[k] || k;
      for (const [a, b] of Object.entries(vars || {})) s = s.split("{" + a + "}").join(String(b));
      return s;
    };
  }
  // A DOM element with attributes ("class", "text" or any attribute) and children.
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
    }
    for (const c of kids) if (c !== null && c !== undefined) e.append(c);
    return e;
  }
  return { api, ApiError, show, readFile, en, messages, el };
})();
