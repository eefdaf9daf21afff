/* A citizen's DID key in the browser: did:key Ed25519 wallets (the `zhixin wallet` format),
   WebCrypto Ed25519 signing and eddsa-jcs-2022 presentations. The key never leaves the page. */
"use strict";
window.zhixinDid = (function () {
  const B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
  function b58decode(s) {
    const bytes = [0];
    for (const ch of s) {
      const v = B58.indexOf(ch);
      if (v < 0) throw new Error("bad base58 character");
      let carry = v;
      for (let i = 0; i < bytes.length; i++) { carry += bytes[i] * 58; bytes[i] = carry & 0xff; carry >>= 8; }
      while (carry > 0) { bytes.push(carry & 0xff); carry >>= 8; }
    }
    for (const ch of s) { if (ch === "1") bytes.push(0); else break; }
    return new Uint8Array(bytes.reverse());
  }
  function b58encode(buf) {
    const digits = [0];
    for (const b of buf) {
      let carry = b;
      for (let i = 0; i < digits.length; i++) { carry += digits[i] << 8; digits[i] = carry % 58; carry = (carry / 58) | 0; }
      while (carry > 0) { digits.push(carry % 58); carry = (carry / 58) | 0; }
    }
    let out = "";
    for (const b of buf) { if (b === 0) out += "1"; else break; }
    for (let i = digits.length - 1; i >= 0; i--) out += B58[digits[i]];
    return out;
  }
  function b64url(bytes) {
    let s = ""; for (const b of bytes) s += String.fromCharCode(b);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  // RFC 8785 for the JSON our credentials hold (strings, integers, booleans, null, arrays, objects).
  function jcs(v) {
    if (v === null || typeof v === "boolean") return JSON.stringify(v);
    if (typeof v === "number") {
      if (!Number.isFinite(v)) throw new Error("JCS: non-finite number");
      return JSON.stringify(v);
    }
    if (typeof v === "string") return JSON.stringify(v);
    if (Array.isArray(v)) return "[" + v.map(jcs).join(",") + "]";
    const keys = Object.keys(v).sort((a, b) => {
      // RFC 8785 sorts by UTF-16 code units, which is JS's default string order
      return a < b ? -1 : a > b ? 1 : 0;
    });
    return "{" + keys.map((k) => JSON.stringify(k) + ":" + jcs(v[k])).join(",") + "}";
  }
  async function sha256(text) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  }
  function decodeMultikey(mb, prefix0, prefix1) {
    if (typeof mb !== "string" || mb[0] !== "z") throw new Error("not a base58btc multikey");
    const raw = b58decode(mb.slice(1));
    if (raw.length !== 34 || raw[0] !== prefix0 || raw[1] !== prefix1) throw new Error("not an Ed25519 multikey");
    return raw.slice(2);
  }
  async function loadWallet(text) {
    let w;
    try { w = JSON.parse(text); } catch (e) { throw new Error("the wallet file is not JSON"); }
    if (!w || typeof w.did !== "string" || typeof w.secretKeyMultibase !== "string") {
      throw new Error("not a zhixin wallet (did, secretKeyMultibase)");
    }
    if (!w.did.startsWith("did:key:z6Mk")) throw new Error("the browser wallet supports did:key Ed25519 wallets");
    const pub = decodeMultikey(w.did.slice("did:key:".length).split("#")[0], 0xed, 0x01);
    const seed = decodeMultikey(w.secretKeyMultibase, 0x80, 0x26);
    const key = await crypto.subtle.importKey(
      "jwk", { kty: "OKP", crv: "Ed25519", d: b64url(seed), x: b64url(pub) }, { name: "Ed25519" }, false, ["sign"]);
    return { did: w.did, vm: w.verificationMethod || (w.did + "#" + w.did.slice(8)), key, credentials: w.credentials || [] };
  }
  function now() { return new Date().toISOString().replace(/\.\d{3}Z$/, "Z"); }
  // eddsa-jcs-2022: sign sha256(JCS(proof config)) || sha256(JCS(document)); the proof repeats @context.
  async function signPresentation(wallet, credentials, challenge, domain) {
    const vp = {
      "@context": ["https://www.w3.org/ns/credentials/v2"],
      type: ["VerifiablePresentation"],
      holder: wallet.did,
      verifiableCredential: credentials,
    };
    if (!credentials || credentials.length === 0) delete vp.verifiableCredential;
    const proof = {
      type: "DataIntegrityProof", cryptosuite: "eddsa-jcs-2022", created: now(),
      verificationMethod: wallet.vm, proofPurpose: "authentication", challenge, domain,
      "@context": vp["@context"],
    };
    const h1 = await sha256(jcs(proof));
    const h2 = await sha256(jcs(vp));
    const data = new Uint8Array(64); data.set(h1, 0); data.set(h2, 32);
    const sig = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, wallet.key, data));
    proof.proofValue = "z" + b58encode(sig);
    vp.proof = proof;
    return vp;
  }
  return { loadWallet, signPresentation, jcs, b58encode, b58decode };
})();
