/* Agency console in the browser: the agency's keystore unlocked with ethers in this page's
   memory only, EIP-712 signing of the records the JSON API prepares (one record, a CSV batch,
   objections), submission to the JSON API and status polling. The key never leaves the page. */
"use strict";
(function () {
  const z = window.zhixin;
  const $ = (id) => document.getElementById(id);
  const m = z.messages("agency-i18n");
  const el = z.el;
  function errText(e) {
    const msg = (e && e.message) || String(e);
    if (/invalid password|incorrect password/i.test(msg)) return m("agency.js.wrong_password");
    return msg;
  }

  // ---- the signing key: unlocked in page memory, never stored, never sent ----
  const unlockSec = $("unlock");
  const me = unlockSec ? unlockSec.dataset.address.toLowerCase() : null;
  let wallet = null;
  let waiting = [];

  function needWallet() {
    if (wallet) return Promise.resolve(wallet);
    if (!unlockSec) return Promise.reject(new Error(m("agency.unlock.needed")));
    z.show($("unlock-needed"), m("agency.unlock.needed"));
    unlockSec.scrollIntoView({ block: "center" });
    $("unlock-keystore").focus();
    return new Promise((resolve) => waiting.push(resolve));
  }
  if (unlockSec) {
    $("unlock-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      z.show($("unlock-error"), "");
      const btn = $("unlock-submit");
      btn.disabled = true;
      $("unlock-state").textContent = m("agency.js.signing");
      try {
        const text = await z.readFile($("unlock-keystore"));
        const w = await ethers.Wallet.fromEncryptedJson(text, $("unlock-password").value);
        if (w.address.toLowerCase() !== me) {
          throw new Error(m("agency.js.wrong_key", { key: w.address, me: unlockSec.dataset.address }));
        }
        wallet = w;
        $("unlock-password").value = "";
        $("unlock-state").textContent = m("agency.js.unlocked", { address: w.address });
        z.show($("unlock-needed"), "");
        $("unlock-forget").hidden = false;
        const ws = waiting;
        waiting = [];
        ws.forEach((r) => r(w));
      } catch (e) {
        $("unlock-state").textContent = m("agency.unlock.locked");
        z.show($("unlock-error"), errText(e));
      } finally {
        btn.disabled = false;
      }
    });
    $("unlock-forget").addEventListener("click", () => {
      wallet = null;
      $("unlock-state").textContent = m("agency.unlock.locked");
      $("unlock-forget").hidden = true;
    });
  }

  /* Sign a prepared record ({record, id, typedData}) with the unlocked key. ethers wants the
     types without EIP712Domain; the message is the record JSON (big integers as decimal
     strings, so nothing loses precision). The digest must be the id the service computed. */
  async function sign(prepared) {
    const w = await needWallet();
    const td = prepared.typedData;
    const types = {};
    for (const k of Object.keys(td.types)) if (k !== "EIP712Domain") types[k] = td.types[k];
    const message = prepared.record;
    const digest = ethers.TypedDataEncoder.hash(td.domain, types, message);
    if (digest.toLowerCase() !== String(prepared.id).toLowerCase()) {
      throw new Error(m("agency.js.id_mismatch", { id: prepared.id, digest }));
    }
    return w.signTypedData(td.domain, types, message);
  }
  function signedItem(prepared, signature) {
    const item = { record: prepared.record, signature };
    if (prepared.reason) item.reason = prepared.reason;
    if (prepared.grid) item.grid = prepared.grid;
    return item;
  }
  /* POST /v1/credit-records; a 4xx with per-item problems (every item refused) is a result. */
  async function submit(items) {
    try {
      return await z.api("POST", "/v1/credit-records", { records: items });
    } catch (e) {
      if (e.problem && Array.isArray(e.problem.items)) {
        return { accepted: 0, rejected: items.length, items: e.problem.items };
      }
      throw e;
    }
  }

  // ---- status: pending → on chain (block, tx) → indexed ----
  const STAGE_CLASS = { indexed: "ok", onchain: "good", rejected: "bad" };
  function stageOf(st) {
    if (st.status === "rejected") return "rejected";
    if (st.indexed) return "indexed";
    if (st.status === "onchain" || st.status === "final") return "onchain";
    return st.status || "pending";
  }
  function stageNode(st) {
    const stage = stageOf(st);
    const wrap = el("span", { class: "stage-live" },
      el("span", { class: "badge " + (STAGE_CLASS[stage] || "pending"), "data-testid": "stage", "data-stage": stage,
        text: m("agency.stage." + stage) }));
    if (st.block_number) wrap.append(" ", el("span", { class: "muted", text: m("agency.block") + " " + st.block_number }));
    if (st.tx_hash) wrap.append(" ", el("code", { title: st.tx_hash, text: m("agency.tx") + " " + st.tx_hash.slice(0, 14) + "…" }));
    if (st.reject_reason) wrap.append(" ", el("span", { class: "muted", text: st.reject_reason }));
    return wrap;
  }
  /* Poll GET /v1/credit-records/{id} until indexed or rejected; onUpdate(status) each time. */
  function poll(id, onUpdate) {
    let delay = 800;
    const started = Date.now();
    async function tick() {
      let st;
      try {
        st = await z.api("GET", "/v1/credit-records/" + encodeURIComponent(id));
      } catch (e) {
        if (e.status === 404 && Date.now() - started < 60000) { setTimeout(tick, delay); return; }
        onUpdate({ status: "error", error: errText(e) });
        return;
      }
      onUpdate(st);
      const stage = stageOf(st);
      if (stage === "indexed" || stage === "rejected") return;
      if (Date.now() - started > 15 * 60000) return;
      delay = Math.min(delay * 1.3, 5000);
      setTimeout(tick, delay);
    }
    tick();
  }
  function liveStatus(cell, id) {
    poll(id, (st) => {
      cell.replaceChildren(st.error ? el("span", { class: "error small", text: st.error }) : stageNode(st));
    });
  }
  function idLink(id) {
    return el("a", { href: "/v1/credit-records/" + id, "data-testid": "record-link" }, el("code", { text: id.slice(0, 18) + "…" }));
  }

  // recent submissions on the overview: refresh the rows still moving
  document.querySelectorAll("tr[data-poll]").forEach((tr) => {
    const id = tr.dataset.id;
    poll(id, (st) => {
      if (st.error) return;
      tr.querySelector(".stage").replaceChildren(stageNode(st));
      tr.querySelector(".block").textContent = st.block_number || "";
      if (st.tx_hash) tr.querySelector(".tx").replaceChildren(el("code", { title: st.tx_hash, text: st.tx_hash.slice(0, 18) + "…" }));
    });
  });

  // ---- helpers for the forms ----
  function cstSeconds(dateStr) {  // YYYY-MM-DD at midnight China time (UTC+8)
    const [y, mo, d] = dateStr.split("-").map(Number);
    return Date.UTC(y, mo - 1, d) / 1000 - 8 * 3600;
  }
  async function sha256Hex(file) {
    const buf = await file.arrayBuffer();
    const h = new Uint8Array(await crypto.subtle.digest("SHA-256", buf));
    return "0x" + Array.from(h, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // ---- one record ----
  const oneForm = $("one-form");
  if (oneForm) {
    const cat = $("one-category");
    const unit = () => {
      const o = cat.selectedOptions[0];
      $("one-unit").textContent = o && o.dataset.unit ? "(" + o.dataset.unit + ")" : "";
    };
    cat.addEventListener("change", unit);
    unit();
    const ev = $("one-evidence");
    ev.addEventListener("change", async () => {
      $("one-evidence-hash").textContent = ev.files[0] ? m("agency.js.hashing") : "";
      if (ev.files[0]) $("one-evidence-hash").textContent = "SHA-256 " + (await sha256Hex(ev.files[0]));
    });
    oneForm.addEventListener("submit", async (e) => {
      e.preventDefault();
      const errEl = $("one-error");
      const out = $("one-result");
      z.show(errEl, "");
      out.replaceChildren();
      const btn = $("one-submit");
      btn.disabled = true;
      try {
        const fields = {
          subject: { kind: $("one-kind").value, id: $("one-id").value.trim() },
          category: cat.value,
          agency: oneForm.dataset.address,
        };
        for (const [id, name] of [["one-occurred", "occurredAt"], ["one-from", "effectiveFrom"], ["one-until", "effectiveUntil"]]) {
          if ($(id).value) fields[name] = cstSeconds($(id).value);
        }
        const amount = $("one-amount").value.trim();
        if (amount) {
          if (!/^\d+$/.test(amount) || !Number.isSafeInteger(Number(amount))) throw new Error(m("agency.js.bad_amount"));
          fields.amount = Number(amount);
        }
        if (ev.files[0]) fields.evidenceHash = await sha256Hex(ev.files[0]);
        const reason = $("one-reason").value.trim();
        if (reason) fields.reason = reason;
        const grid = $("one-grid");
        if (grid && grid.value) fields.grid = grid.value;
        const prepared = await z.api("POST", "/v1/credit-records/prepare", fields);
        out.append(el("p", { class: "muted", text: m("agency.js.signing") }));
        const signature = await sign(prepared);
        const res = await submit([signedItem(prepared, signature)]);
        const it = res.items[0];
        out.replaceChildren();
        if (it.status === "rejected") {
          out.append(el("p", { class: "error", "data-testid": "one-outcome", text: m("agency.js.rejected") + ": " + ((it.problem && it.problem.detail) || "") }));
        } else {
          const cell = el("span");
          out.append(el("p", { "data-testid": "one-outcome" },
            el("span", { class: "badge ok", text: m("agency.js." + it.status) }), " ", idLink(it.id), " ", cell));
          liveStatus(cell, it.id);
        }
      } catch (e2) {
        out.replaceChildren();
        z.show(errEl, errText(e2));
      } finally {
        btn.disabled = false;
      }
    });
  }

  // ---- a CSV batch ----
  const batchForm = $("batch-form");
  if (batchForm) {
    const colEl = $("column-of-field");
    const COLUMN_OF = colEl ? JSON.parse(colEl.textContent) : {};
    let rows = [];
    const table = $("batch-table");
    const tbody = table.querySelector("tbody");
    const submitBtn = $("batch-submit");

    function render() {
      tbody.replaceChildren();
      for (const r of rows) {
        const f = r.fields || {};
        const subj = f.subject ? m("agency.kind." + f.subject.kind) + " " + f.subject.id : "";
        const check = r.error
          ? el("span", {}, el("span", { class: "badge bad", text: m("agency.js.error") }), " ",
              el("span", { "data-testid": "row-error", text: (r.column ? m("agency.js.column", { column: r.column }) + ": " : "") + r.error }))
          : el("span", { class: "badge ok", text: m("agency.js.ok") });
        r.outcome = r.outcome || el("td", { class: "outcome", "data-testid": "row-outcome" });
        tbody.append(el("tr", { "data-row": r.row, "data-ok": r.error ? "0" : "1" },
          el("td", { class: "num", text: String(r.row) }), el("td", { text: subj }), el("td", {}, el("code", { text: f.category || "" })),
          el("td", { class: "check" }, check), r.outcome));
      }
      table.hidden = rows.length === 0;
      const ready = rows.filter((r) => r.prepared).length;
      submitBtn.hidden = ready === 0;
      submitBtn.disabled = ready === 0;
      submitBtn.textContent = m("agency.batch.submit") + " (" + ready + ")";
      $("batch-status").textContent = m("agency.js.passed", { ok: ready, bad: rows.length - ready });
    }

    async function prepareRows(okRows) {
      // prepare-batch checks every row (and reserves distinct nonces); per row only if absent
      try {
        const res = await z.api("POST", "/v1/credit-records/prepare-batch", { items: okRows.map((r) => r.fields) });
        return res.items;
      } catch (e) {
        if (e.status !== 404 && e.status !== 405) throw e;
      }
      const out = [];
      for (const r of okRows) {
        try {
          out.push({ status: "ready", ...(await z.api("POST", "/v1/credit-records/prepare", r.fields)) });
        } catch (e) {
          out.push({ status: "error", problem: { detail: errText(e), field: (e.problem || {}).field } });
        }
      }
      return out;
    }

    batchForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      z.show($("batch-error"), "");
      rows = [];
      render();
      const btn = $("batch-check");
      btn.disabled = true;
      $("batch-status").textContent = m("agency.js.checking");
      try {
        const f = $("batch-file").files[0];
        if (!f) throw new Error(z.en() ? "choose a file first" : "请先选择文件");
        const r = await fetch("/agency/batch/parse", {
          method: "POST", credentials: "same-origin", body: await f.arrayBuffer(),
          headers: { "Content-Type": "text/csv", "Accept": "application/json" },
        });
        const data = await r.json().catch(() => ({ detail: "HTTP " + r.status }));
        if (!r.ok) throw new Error(data.detail || data.title || "HTTP " + r.status);
        rows = data.rows.map((x) => ({ row: x.row, fields: x.fields, error: x.error || null, column: x.column || null }));
        const okRows = rows.filter((x) => !x.error);
        if (okRows.length) {
          const results = await prepareRows(okRows);
          results.forEach((res, i) => {
            const row = okRows[i];
            if (res.status === "ready") {
              row.prepared = res;
            } else {
              const p = res.problem || {};
              row.error = p.detail || p.title || "error";
              row.column = COLUMN_OF[p.field] || p.field || null;
            }
          });
        }
        render();
      } catch (e) {
        $("batch-status").textContent = "";
        z.show($("batch-error"), errText(e));
      } finally {
        btn.disabled = false;
      }
    });

    submitBtn.addEventListener("click", async () => {
      const ready = rows.filter((r) => r.prepared && !r.submitted);
      if (!ready.length) { z.show($("batch-error"), m("agency.js.nothing_to_submit")); return; }
      z.show($("batch-error"), "");
      submitBtn.disabled = true;
      try {
        const items = [];
        for (const r of ready) {
          r.outcome.textContent = m("agency.js.signing");
          items.push(signedItem(r.prepared, await sign(r.prepared)));
        }
        const res = await submit(items);
        res.items.forEach((it, i) => {
          const r = ready[i];
          r.submitted = true;
          if (it.status === "rejected") {
            r.outcome.replaceChildren(el("span", { class: "badge bad", text: m("agency.js.rejected") }), " ",
              el("span", { text: (it.problem && it.problem.detail) || "" }));
          } else {
            const cell = el("span");
            r.outcome.replaceChildren(idLink(it.id), " ", cell);
            liveStatus(cell, it.id);
          }
        });
        for (const r of rows) if (r.error) r.outcome.textContent = m("agency.batch.not_submitted");
        $("batch-status").textContent = m("agency.js.submitted", { accepted: res.accepted, rejected: res.rejected });
        submitBtn.hidden = true;
      } catch (e) {
        for (const r of ready) if (!r.submitted) r.outcome.textContent = "";
        z.show($("batch-error"), errText(e));
        submitBtn.disabled = false;
      }
    });
  }

  // ---- objections: accept (OBJECTION record) and resolve (RESOLUTION record) ----
  const objTable = document.querySelector("table[data-testid=objections]");
  if (objTable) {
    function setStatus(tr, status) {
      const cls = { upheld: "good", rejected: "bad" }[status] || "pending";
      tr.querySelector(".obj-status").replaceChildren(el("span", { class: "badge " + cls, "data-testid": "objection-status",
        text: m("agency.objections.status." + status) }));
    }
    function resolveControls(id) {
      return [
        el("label", { for: "note-" + id, text: m("agency.objections.note") }),
        el("textarea", { id: "note-" + id, rows: "2", maxlength: "4000" }),
        el("button", { type: "button", class: "obj-resolve", "data-id": id, "data-upheld": "true", text: m("agency.objections.uphold") }),
        " ",
        el("button", { type: "button", class: "obj-resolve secondary", "data-id": id, "data-upheld": "false", text: m("agency.objections.reject") }),
      ];
    }
    objTable.addEventListener("click", async (ev) => {
      const b = ev.target.closest("button");
      if (!b || !(b.classList.contains("obj-accept") || b.classList.contains("obj-resolve"))) return;
      const id = b.dataset.id;
      const tr = b.closest("tr");
      const errEl = $("obj-error");
      z.show(errEl, "");
      b.disabled = true;
      try {
        const base = "/v1/objections/" + encodeURIComponent(id);
        if (b.classList.contains("obj-accept")) {
          const prep = await z.api("POST", base + "/prepare");
          const signature = await sign(prep);
          const res = await z.api("POST", base + "/accept", { record: prep.record, signature, reason: prep.reason });
          setStatus(tr, res.status);
          tr.querySelector(".obj-actions").replaceChildren(...resolveControls(id));
        } else {
          const note = tr.querySelector("textarea").value.trim();
          if (!note) throw new Error(m("agency.js.ask_note"));
          const upheld = b.dataset.upheld === "true";
          const prep = await z.api("POST", base + "/resolution/prepare", { upheld, note });
          const signature = await sign(prep);
          const res = await z.api("POST", base + "/resolution", { record: prep.record, signature, reason: prep.reason });
          setStatus(tr, res.status);
          tr.querySelector(".obj-actions").replaceChildren(el("span", { class: "muted", text: m("agency.js.done") }));
        }
        $("obj-status-msg").textContent = m("agency.js.done");
      } catch (e) {
        z.show(errEl, errText(e));
        b.disabled = false;
      }
    });
  }

  window.zhixinAgency = { sign, needWallet, cstSeconds, stageOf };
})();
