"""Server-rendered web pages (Jinja2, no front-end build step), in Chinese with English.

Invariants:

* Pages read through the same services and the same :class:`api.deps.Reader` gate as the
  JSON API; a page never shows what the API would refuse the same session.
* Keys stay with their holders: pages that write ask the browser to sign (ethers for an
  agency's keystore, WebCrypto Ed25519 for a citizen's DID key) and send the signature to
  the JSON API; no page route receives a private key.
* Every refusal renders a readable message on the page with the matching 4xx status; an
  expired or forged session cookie is treated as signed out and cleared, never a 500.
"""

from __future__ import annotations

from .core import install_pages

__all__ = ["install_pages"]
