/* Sign-in in the browser: SIWE (EIP-4361) with an encrypted keystore unlocked by ethers, or a
   DID presentation signed with WebCrypto. Only signatures go to the server. */
"use strict";
(function () {
  const z = window.zhixin;
  const errEl = document.getElementById("signin-error");
  const statusEl = document.getElementById("signin-status");
  const files = {};  // demo files loaded by the demo buttons, by input id

  function where(session, next) {
    if (next) return next;
    const roles = (session && session.roles) || [];
    if (roles.includes("AGENCY")) return "/agency";
    if (roles.includes("AUDITOR")) return "/audit";
    if (session && session.subject) return "/me";
    return "/";
  }
  function busy(on) {
    z.show(statusEl, on ? (z.en() ? "Signing…" : "正在签名…") : "");
    document.querySelectorAll("#siwe-submit, #did-submit").forEach((b) => { b.disabled = on; });
  }

  async function siwe(keystoreText, password, next) {
    const wallet = await ethers.Wallet.fromEncryptedJson(keystoreText, password);
    const n = await z.api("GET", "/auth/siwe/nonce");
    const lines = [
      n.domain + " wants you to sign in with your Ethereum account:", wallet.address, "",
      "Sign in to zhixin", "",
      "URI: " + n.uri, "Version: " + n.version, "Chain ID: " + n.chainId,
      "Nonce: " + n.nonce, "Issued At: " + n.issuedAt, "Expiration Time: " + n.expires,
    ];
    const message = lines.join("\n");
    const signature = await wallet.signMessage(message);
    const res = await z.api("POST", "/auth/siwe", { message, signature });
    location.assign(where(res.session, next));
  }

  async function did(walletText, next) {
    const w = await window.zhixinDid.loadWallet(walletText);
    const ch = await z.api("GET", "/auth/did/challenge");
    const creds = w.credentials.filter((c) => (c.type || []).includes("VerifiableCredential"));
    const vp = await window.zhixinDid.signPresentation(w, creds, ch.challenge, ch.domain);
    const res = await z.api("POST", "/auth/did", { verifiablePresentation: vp });
    location.assign(where(res.session, next));
  }

  async function run(fn) {
    z.show(errEl, "");
    busy(true);
    try { await fn(); } catch (e) {
      let msg = e.message || String(e);
      if (/invalid password|incorrect password/i.test(msg)) msg = z.en() ? "wrong keystore password" : "密钥文件密码错误";
      z.show(errEl, msg);
    } finally { busy(false); }
  }

  const siweForm = document.getElementById("siwe-form");
  siweForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    run(async () => {
      const text = files.keystore || await z.readFile(document.getElementById("keystore"));
      await siwe(text, document.getElementById("password").value, siweForm.dataset.next);
    });
  });
  const didForm = document.getElementById("did-form");
  didForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    run(async () => {
      const text = files.wallet || await z.readFile(document.getElementById("wallet"));
      await did(text, didForm.dataset.next);
    });
  });
  document.querySelectorAll(".demo-load").forEach((b) => b.addEventListener("click", () => run(async () => {
    const doc = await z.api("GET", "/signin/demo/" + encodeURIComponent(b.dataset.name));
    if (b.dataset.kind === "wallet") {
      files.wallet = JSON.stringify(doc);
      await did(files.wallet, didForm.dataset.next);
    } else {
      files.keystore = JSON.stringify(doc);
      document.getElementById("password").value = "demo";
      await siwe(files.keystore, "demo", siweForm.dataset.next);
    }
  })));
})();
