/* Audit dashboard in the browser: verify a record's RFC 9162 inclusion proof against the
   signed checkpoint with WebCrypto SHA-256, and the checkpoint's Ed25519 signature (C2SP
   signed note) against the log's verifier key. Nothing here trusts the server's word that a
   proof is valid: the hashes are recomputed in this page.

   The pure part (zhixinAudit.verifyInclusion, parseCheckpoint, verifyNote, checkProof) runs
   unchanged under node (tests/pages/test_audit_pages.py runs it on real proofs). */
"use strict";
(function (root) {
  const subtle = root.crypto.subtle;

  // ---- bytes ----
  function hexToBytes(hex) {
    const h = String(hex).replace(/^0x/i, "");
    if (h.length % 2 || /[^0-9a-f]/i.test(h)) throw new Error("not hexadecimal: " + hex);
    const out = new Uint8Array(h.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(h.substr(i * 2, 2), 16);
    return out;
  }
  function bytesToHex(b) {
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }
  function b64ToBytes(s) {
    if (typeof s !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4) {
      throw new Error("not canonical base64: " + s);
    }
    const bin = root.atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  function bytesToB64(b) {
    let s = "";
    for (const x of b) s += String.fromCharCode(x);
    return root.btoa(s);
  }
  function equal(a, b) {
    if (a.length !== b.length) return false;
    let d = 0;
    for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
    return d === 0;
  }
  async function sha256(...parts) {
    let n = 0;
    for (const p of parts) n += p.length;
    const buf = new Uint8Array(n);
    let o = 0;
    for (const p of parts) { buf.set(p, o); o += p.length; }
    return new Uint8Array(await subtle.digest("SHA-256", buf));
  }

  // ---- RFC 9162 §2.1.1 hashing ----
  const LEAF = new Uint8Array([0x00]);
  const NODE = new Uint8Array([0x01]);
  const leafHash = (data) => sha256(LEAF, data);
  const nodeHash = (l, r) => sha256(NODE, l, r);

  function bitLength(n) { return n === 0n ? 0 : n.toString(2).length; }
  function popCount(n) { return n.toString(2).split("").filter((c) => c === "1").length; }
  function proofLength(index, size) {  // hashes in PATH(index, size): as ledger/tlog.py
    const inner = bitLength(index ^ (size - 1n));
    return inner + popCount(index >> BigInt(inner));
  }

  /* RFC 9162 §2.1.3.2, step for step (BigInt indices: tree sizes are uint64).
     leaf: the leaf's hash (32 bytes); path: list of 32-byte hashes; root: expected root.
     Returns {ok, computed (hex), error}. */
  async function verifyInclusion(leaf, index, size, path, rootHash) {
    const fail = (error, computed) => ({ ok: false, error, computed: computed ? bytesToHex(computed) : null });
    let fn = BigInt(index);
    let sn = BigInt(size);
    if (leaf.length !== 32) return fail("leaf hash must be 32 bytes");
    if (rootHash.length !== 32) return fail("root must be 32 bytes");
    for (let i = 0; i < path.length; i++) if (path[i].length !== 32) return fail("proof hash " + i + " is not 32 bytes");
    // step 1
    if (fn >= sn) return fail("leaf index " + fn + " is not below tree size " + sn);
    const want = proofLength(fn, sn);
    if (path.length !== want) {
      return fail("proof has " + path.length + " hashes; leaf " + fn + " of a tree of size " + sn + " needs " + want);
    }
    // steps 2-4
    sn -= 1n;
    let r = leaf;
    for (const p of path) {
      if (sn === 0n) return fail("proof is longer than the path to the root");
      if ((fn & 1n) === 1n || fn === sn) {
        r = await nodeHash(p, r);
        if ((fn & 1n) === 0n) {
          while (fn !== 0n && (fn & 1n) === 0n) { fn >>= 1n; sn >>= 1n; }
        }
      } else {
        r = await nodeHash(r, p);
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    // step 5
    if (sn !== 0n) return fail("proof is shorter than the path to the root", r);
    if (!equal(r, rootHash)) return fail("the proof gives root " + bytesToHex(r) + ", not the checkpoint's " + bytesToHex(rootHash), r);
    return { ok: true, computed: bytesToHex(r), error: null };
  }

  // ---- C2SP checkpoints and signed notes ----
  function parseCheckpoint(note) {
    if (typeof note !== "string" || !note.endsWith("\n")) throw new Error("a checkpoint note ends with a newline");
    const split = note.lastIndexOf("\n\n");
    if (split < 0) throw new Error("the note has no blank line before its signatures");
    const body = note.slice(0, split + 1);
    const lines = body.slice(0, -1).split("\n");
    if (lines.length < 3) throw new Error("a checkpoint has origin, size and root lines");
    if (!/^(0|[1-9][0-9]*)$/.test(lines[1])) throw new Error("checkpoint size is not a decimal number");
    const rootHash = b64ToBytes(lines[2]);
    if (rootHash.length !== 32) throw new Error("checkpoint root is not 32 bytes");
    const signatures = note.slice(split + 2, -1).split("\n").map((line) => {
      const m = /^\u2014 (\S+) (\S+)$/.exec(line);
      if (!m) throw new Error("malformed signature line: " + line);
      const raw = b64ToBytes(m[2]);
      return { name: m[1], keyId: bytesToHex(raw.slice(0, 4)), signature: raw.slice(4) };
    });
    return { body, origin: lines[0], size: BigInt(lines[1]), rootB64: lines[2], rootHash, extensions: lines.slice(3), signatures };
  }
  /* The note's signature by the verifier key <name>+<hex id>+<base64(0x01 || Ed25519 key)>.
     Returns {ok, error}; {ok: null} if this browser's WebCrypto has no Ed25519. */
  async function verifyNote(note, vkey) {
    const cp = parseCheckpoint(note);
    // <name>+<hex id>+<base64 key>: the base64 part may itself contain "+"
    const s = String(vkey);
    const a = s.indexOf("+");
    const b = a < 0 ? -1 : s.indexOf("+", a + 1);
    if (a <= 0 || b < 0) return { ok: false, error: "malformed verifier key" };
    const name = s.slice(0, a), idHex = s.slice(a + 1, b), keyB64 = s.slice(b + 1);
    const material = b64ToBytes(keyB64);
    if (material.length !== 33 || material[0] !== 0x01) return { ok: false, error: "not an Ed25519 verifier key" };
    const pub = material.slice(1);
    const enc = new TextEncoder();
    const id = (await sha256(enc.encode(name), new Uint8Array([0x0a, 0x01]), pub)).slice(0, 4);
    if (bytesToHex(id) !== idHex.toLowerCase()) return { ok: false, error: "the key id does not match the key" };
    const sig = cp.signatures.find((s) => s.name === name && s.keyId === idHex.toLowerCase());
    if (!sig) return { ok: false, error: "no signature by " + name + "+" + idHex };
    let key;
    try {
      key = await subtle.importKey("raw", pub, { name: "Ed25519" }, false, ["verify"]);
    } catch (e) {
      return { ok: null, error: "this browser cannot check Ed25519 signatures" };
    }
    const ok = await subtle.verify({ name: "Ed25519" }, key, sig.signature, enc.encode(cp.body));
    return { ok, error: ok ? null : "the checkpoint signature does not verify" };
  }

  /* A /v1/log/proof/inclusion answer, checked: the leaf is the record id's 32 bytes, the
     root is the one in the signed checkpoint of the same tree size. */
  async function checkProof(proof) {
    const cp = parseCheckpoint(proof.checkpoint);
    const problems = [];
    if (cp.size !== BigInt(proof.tree_size)) problems.push("the checkpoint is for size " + cp.size + ", the proof for " + proof.tree_size);
    if (cp.rootB64 !== proof.root_hash) problems.push("the proof's root_hash is not the checkpoint's root");
    const id = hexToBytes(proof.id);
    if (id.length !== 32) throw new Error("a record id is 32 bytes");
    const leaf = await leafHash(id);
    const path = proof.inclusion_path.map(b64ToBytes);
    const res = await verifyInclusion(leaf, proof.leaf_index, cp.size, path, cp.rootHash);
    if (!res.ok) problems.push(res.error);
    return { ok: problems.length === 0, problems, leaf: bytesToHex(leaf), computed: res.computed, checkpoint: cp };
  }

  const api = { hexToBytes, bytesToHex, b64ToBytes, bytesToB64, sha256, leafHash, nodeHash, proofLength,
    verifyInclusion, parseCheckpoint, verifyNote, checkProof };
  root.zhixinAudit = api;
  if (typeof document === "undefined") return;

  // ---- the page ----
  const z = root.zhixin;
  const $ = (id) => document.getElementById(id);
  const m = z.messages("audit-i18n");
  const el = z.el;

  // the checkpoint on the page: its signature checked against the log's key, here
  const cpNote = $("checkpoint-note");
  const cpSig = $("checkpoint-sig");
  if (cpNote && cpSig && cpNote.dataset.vkey) {
    verifyNote(cpNote.textContent, cpNote.dataset.vkey).then((r) => {
      cpSig.replaceChildren(el("span", { class: "badge " + (r.ok ? "ok" : r.ok === null ? "pending" : "bad"),
        "data-testid": "checkpoint-sig-state",
        text: r.ok ? m("audit.js.sig_ok") : r.ok === null ? m("audit.js.sig_unchecked") : m("audit.js.sig_bad") + ": " + r.error }));
    }).catch((e) => cpSig.replaceChildren(el("span", { class: "badge bad", text: e.message })));
  }

  const form = $("proof-form");
  if (!form) return;
  const out = $("proof-result");
  const errEl = $("proof-error");
  const vkey = form.dataset.vkey || "";

  function proofBlock(proof, res, title) {
    const sec = el("section", { class: "card", "data-testid": "proof" });
    sec.append(el("h3", { text: title }));
    const dl = el("dl", { class: "kv" });
    const row = (k, v) => { dl.append(el("dt", { text: k }), el("dd", {}, v)); };
    row(m("audit.proof.id"), el("code", { text: proof.id }));
    row(m("audit.proof.leaf_index"), el("span", { "data-testid": "leaf-index", text: String(proof.leaf_index) }));
    row(m("audit.proof.tree_size"), el("span", { text: String(proof.tree_size) }));
    row(m("audit.proof.leaf_hash"), el("code", { text: res.leaf }));
    row(m("audit.proof.root"), el("code", { text: proof.root_hash }));
    row(m("audit.proof.computed"), el("code", { text: res.computed ? bytesToB64(hexToBytes(res.computed)) : "—" }));
    sec.append(dl);
    const ol = el("ol", { class: "proof-path", start: "1" });
    for (const h of proof.inclusion_path) ol.append(el("li", { text: h }));
    sec.append(el("p", { text: m("audit.proof.path", { n: proof.inclusion_path.length }) }), ol);
    sec.append(el("details", {}, el("summary", { text: m("audit.proof.checkpoint") }), el("pre", { class: "note", text: proof.checkpoint })));
    const verdict = res.ok
      ? el("p", { class: "verdict ok", role: "status", "data-testid": "verdict", "data-ok": "1", text: "✔ " + m("audit.js.verified", { size: proof.tree_size }) })
      : el("p", { class: "verdict bad", role: "alert", "data-testid": "verdict", "data-ok": "0", text: "✘ " + m("audit.js.mismatch") + ": " + res.problems.join("; ") });
    sec.prepend(verdict);
    return sec;
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    z.show(errEl, "");
    out.replaceChildren();
    const id = $("proof-id").value.trim();
    if (!/^0x[0-9a-fA-F]{64}$/.test(id)) { z.show(errEl, m("audit.js.bad_id")); return; }
    const btn = $("proof-submit");
    btn.disabled = true;
    out.append(el("p", { class: "muted", text: m("audit.js.fetching") }));
    try {
      const proof = await z.api("GET", "/v1/log/proof/inclusion?id=" + encodeURIComponent(id));
      out.replaceChildren();
      const res = await checkProof(proof);
      out.append(proofBlock(proof, res, m("audit.proof.title")));
      if (vkey) {
        const sig = await verifyNote(proof.checkpoint, vkey);
        out.append(el("p", { "data-testid": "proof-sig" }, el("span", { class: "badge " + (sig.ok ? "ok" : sig.ok === null ? "pending" : "bad"),
          text: sig.ok ? m("audit.js.sig_ok") : sig.ok === null ? m("audit.js.sig_unchecked") : m("audit.js.sig_bad") + ": " + sig.error })));
      }
      for (const w of proof.withdrawn_by || []) {
        const wr = await checkProof(w);
        out.append(proofBlock(w, wr, m("audit.proof.withdrawn")));
      }
    } catch (e) {
      out.replaceChildren();
      z.show(errEl, e.status === 404 ? m("audit.js.not_in_log", { detail: e.message }) : e.message || String(e));
    } finally {
      btn.disabled = false;
    }
  });
})(typeof window !== "undefined" ? window : globalThis);
