/* Citizen pages: present the identity credential to a verifier (the key stays in this page)
   and the verifier's screen that waits for the result. */
"use strict";
(function () {
  const z = window.zhixin;

  function label(name) {
    const el = document.getElementById("i18n-verify");
    return (el && el.dataset[name]) || name;
  }

  function showChecks(tbody, outcomeEl, res) {
    outcomeEl.textContent = (res.verified ? "✔ " : "✗ ") + label(res.verified ? "verified" : "failed");
    outcomeEl.className = "big " + (res.verified ? "ok" : "bad");
    outcomeEl.dataset.verified = res.verified ? "true" : "false";
    tbody.textContent = "";
    for (const c of res.checks || []) {
      const tr = document.createElement("tr");
      tr.setAttribute("data-testid", "check");
      tr.dataset.check = c.name;
      tr.dataset.ok = c.ok ? "true" : "false";
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = c.name;
      const td1 = document.createElement("td");
      const b = document.createElement("span");
      b.className = "badge " + (c.ok ? "ok" : "bad");
      b.textContent = (c.ok ? "✔ " : "✗ ") + c.code;
      td1.appendChild(b);
      const td2 = document.createElement("td");
      td2.textContent = c.message || "";
      tr.append(th, td1, td2);
      tbody.appendChild(tr);
    }
  }

  // ---- the citizen's side: /present ----
  const form = document.getElementById("present-form");
  if (form) {
    const errEl = document.getElementById("present-error");
    const statusEl = document.getElementById("present-status");
    const challenge = form.dataset.challenge;
    const domain = form.dataset.domain;
    let busy = false;

    async function present(walletText) {
      if (busy) return;
      busy = true;
      z.show(errEl, "");
      z.show(statusEl, z.en() ? "Signing…" : "正在签名…");
      document.querySelectorAll("#present-submit, .present-demo").forEach((b) => { b.disabled = true; });
      try {
        const w = await window.zhixinDid.loadWallet(walletText);
        const creds = w.credentials.filter((c) => (c.type || []).includes("VerifiableCredential"));
        const vp = await window.zhixinDid.signPresentation(w, creds, challenge, domain);
        const res = await z.api("POST", "/verify/" + encodeURIComponent(challenge) + "/presentation",
          { verifiablePresentation: vp });
        z.show(statusEl, "");
        form.hidden = true;
        const demo = document.querySelector(".demo");
        if (demo) demo.hidden = true;
        showChecks(document.getElementById("present-checks"), document.getElementById("present-outcome"), res);
        document.getElementById("present-result").hidden = false;
      } catch (e) {
        z.show(statusEl, "");
        z.show(errEl, e.message || String(e));
        document.querySelectorAll("#present-submit, .present-demo").forEach((b) => { b.disabled = false; });
      } finally {
        busy = false;
      }
    }

    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      z.readFile(document.getElementById("wallet")).then(present, (e) => z.show(errEl, e.message || String(e)));
    });
    document.querySelectorAll(".present-demo").forEach((b) => b.addEventListener("click", async () => {
      try {
        const doc = await z.api("GET", "/signin/demo/" + encodeURIComponent(b.dataset.name));
        await present(JSON.stringify(doc));
      } catch (e) { z.show(errEl, e.message || String(e)); }
    }));
  }

  // ---- the verifier's side: /verify ----
  const box = document.getElementById("verify");
  if (box) {
    const challenge = box.dataset.challenge;
    const expires = Number(box.dataset.expires) * 1000;
    const statusEl = document.getElementById("verify-status");
    const errEl = document.getElementById("verify-error");
    async function poll() {
      if (Date.now() > expires) { z.show(statusEl, label("expired")); return; }
      try {
        const res = await z.api("GET", "/verify/" + encodeURIComponent(challenge) + "/result");
        if (res.status === "done") {
          z.show(statusEl, "");
          statusEl.hidden = false;
          showChecks(document.getElementById("verify-checks"), document.getElementById("verify-outcome"), res);
          document.getElementById("verify-holder").textContent = res.holder || "";
          document.getElementById("verify-result").hidden = false;
          return;
        }
      } catch (e) {
        if (e.status === 404) { z.show(statusEl, label("expired")); return; }
        z.show(errEl, e.message || String(e));
      }
      setTimeout(poll, 1500);
    }
    setTimeout(poll, 1000);
  }
})();
