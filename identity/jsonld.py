"""Offline JSON-LD: bundled contexts, a network-free document loader, RDFC-1.0 canonicalization.

Invariants:

* **Never touches the network.** :func:`document_loader` serves only the contexts bundled in
  ``identity/contexts/`` (listed in ``index.json``) and raises :class:`UnknownContext` for every
  other URL. :func:`canonicalize_rdfc` always passes it to pyld, together with a private
  context resolver, so pyld's global default loader and its process-wide context cache are
  never consulted.
* Bundled contexts are read and parsed once per process and cached; pyld's *resolved* form of
  each is cached too (keyed by URL, in a bounded cache private to this module). No
  canonicalization *result* is ever cached: each call canonicalizes its own input.
* Safe mode (W3C VC Data Integrity 1.0, "safe mode" for JSON-LD processing): a document in
  which the JSON-LD processor would silently drop data — an undefined term, a relative IRI
  for a subject, type, property or datatype — is rejected with :class:`UnsafeJsonLd` instead
  of being canonicalized without it. Otherwise a signature would not cover what a reader of
  the JSON sees.
* Bounded work: RDFC-1.0 can take exponential time on crafted ("poison") graphs; the
  N-degree hashing step is capped and exceeding the cap raises :class:`InvalidJsonLd`.
* Every failure caused by the input raises an :class:`~ledger.errors.InvalidInput` subclass;
  exceptions escaping pyld are converted, so callers need not know pyld's error types.
* pyld's caches are not thread-safe, so pyld calls are serialized with one lock (they are
  CPU-bound under the GIL anyway).
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any, Final

from pyld import jsonld as _pyld
from pyld.canon import URDNA2015
from pyld.context_resolver import ContextResolver
from pyld.identifier_issuer import IdentifierIssuer

from ledger.errors import InvalidInput

__all__ = [
    "ZHIXIN_IDENTITY_CONTEXT",
    "InvalidJsonLd",
    "UnknownContext",
    "UnsafeJsonLd",
    "bundled_context",
    "bundled_context_urls",
    "canonicalize_rdfc",
    "document_loader",
]

ZHIXIN_IDENTITY_CONTEXT: Final = "https://zhixin.example/contexts/identity/v1"
"""Context defining the zhixin identity credential terms (vocabulary ``zhixin.example/vocab#``)."""

_PACKAGE: Final = "identity.contexts"
_INDEX_FILE: Final = "index.json"
_RESOLVED_CACHE_SIZE: Final = 256
# hash_n_degree_quads calls allowed beyond the square of the blank-node count; real credentials
# need none at all (their blank nodes are told apart by their first-degree hashes).
_MIN_DEEP_CALLS: Final = 64

# pyld's own test for an absolute IRI or blank node identifier (pyld.jsonld._is_absolute_iri):
# any id, type or property failing it is silently left out of the RDF dataset.
_ABSOLUTE_IRI: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+\-.]*|_):[^\s]*$")
# Control characters that canonical N-Quads (RDFC-1.0) writes as \uXXXX but pyld writes raw;
# refusing them keeps our canonical form equal to every other implementation's.
_UNCANONICAL_CHARS: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

_PYLD_LOCK: Final = threading.Lock()


class UnknownContext(InvalidInput):
    """A document names a JSON-LD context that is not bundled; we never fetch one."""

    code = "unknown-context"


class InvalidJsonLd(InvalidInput):
    """The document is not valid JSON-LD, or canonicalizing it would take unbounded work."""

    code = "invalid-jsonld"


class UnsafeJsonLd(InvalidJsonLd):
    """JSON-LD processing would silently drop part of the document (safe-mode violation)."""

    code = "unsafe-jsonld"


@cache
def _index() -> Mapping[str, str]:
    text = resources.files(_PACKAGE).joinpath(_INDEX_FILE).read_text(encoding="utf-8")
    index: dict[str, str] = json.loads(text)
    return index


@cache
def _parsed(url: str) -> dict[str, Any]:
    """Parse one bundled context file (once per process)."""
    text = resources.files(_PACKAGE).joinpath(_index()[url]).read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def bundled_context_urls() -> frozenset[str]:
    """Return the URLs :func:`document_loader` can serve."""
    return frozenset(_index())


def bundled_context(url: str) -> dict[str, Any]:
    """Return a private copy of a bundled context document; :class:`UnknownContext` if absent."""
    if url not in _index():
        raise UnknownContext("JSON-LD context is not bundled (remote contexts are never fetched)")
    return copy.deepcopy(_parsed(url))


def document_loader(url: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """pyld document loader serving bundled contexts only; never performs I/O beyond them.

    The returned remote document is tagged ``static`` so that pyld's context resolver caches
    the resolved context under its URL; the document is a fresh copy because pyld may edit it
    in place.
    """
    del options  # headers, profiles: irrelevant for bundled files
    if not isinstance(url, str) or url not in _index():
        shown = url if isinstance(url, str) and len(url) <= 200 else "(not shown)"
        raise UnknownContext(
            f"JSON-LD context {shown} is not bundled (remote contexts are never fetched)",
            url=shown,
        )
    return {
        "contextUrl": None,
        "documentUrl": url,
        "document": copy.deepcopy(_parsed(url)),
        "contentType": "application/ld+json",
        "tag": "static",
    }


class _BoundedCache(dict[str, Any]):
    """The two dict operations pyld's ContextResolver uses, with FIFO eviction."""

    def __init__(self, maxsize: int) -> None:
        super().__init__()
        self._maxsize = maxsize

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in self and len(self) >= self._maxsize:
            del self[next(iter(self))]
        super().__setitem__(key, value)


_RESOLVED_CONTEXTS: Final = _BoundedCache(_RESOLVED_CACHE_SIZE)


class _BoundedRdfc(URDNA2015):
    """URDNA2015 (= RDFC-1.0) with a cap on N-degree hashing, against poison graphs."""

    def __init__(self) -> None:
        super().__init__()
        self._deep_calls = 0

    def hash_n_degree_quads(self, id_: str, issuer: Any) -> Any:
        self._deep_calls += 1
        if self._deep_calls > _MIN_DEEP_CALLS + len(self.blank_node_info) ** 2:
            raise InvalidJsonLd("RDF canonicalization exceeded its work limit (poison graph?)")
        return super().hash_n_degree_quads(id_, issuer)


def _check_safe(node: Any) -> None:
    """Raise :class:`UnsafeJsonLd` where RDF conversion of expanded JSON-LD would drop data."""
    if isinstance(node, list):
        for item in node:
            _check_safe(item)
        return
    if not isinstance(node, dict):
        return
    if "@value" in node:
        datatype = node.get("@type")
        if datatype is not None and datatype != "@json" and not _ABSOLUTE_IRI.match(datatype):
            raise UnsafeJsonLd("a value has a relative datatype IRI")
        value = node["@value"]
        if isinstance(value, str) and _UNCANONICAL_CHARS.search(value):
            raise UnsafeJsonLd("a string value contains control characters")
        return
    for key, value in node.items():
        if key == "@id":
            if not isinstance(value, str) or not _ABSOLUTE_IRI.match(value):
                raise UnsafeJsonLd("a node has a relative or invalid id")
        elif key == "@type":
            for type_ in value if isinstance(value, list) else [value]:
                if not isinstance(type_, str) or not _ABSOLUTE_IRI.match(type_):
                    raise UnsafeJsonLd("a type is not defined by any context (relative IRI)")
        elif key.startswith("@"):
            _check_safe(value)
        elif key.startswith("_:") or not _ABSOLUTE_IRI.match(key):
            raise UnsafeJsonLd("a property is not defined by any context")
        else:
            _check_safe(value)


def _to_dataset(processor: _pyld.JsonLdProcessor, expanded: Any) -> dict[str, Any]:
    """RDF dataset of *already expanded* JSON-LD.

    The body of pyld 3.3.0 ``JsonLdProcessor.to_rdf`` after its expansion step, which would
    expand the document a second time (a third of the cost of a verification). The W3C
    vectors in the tests pin the result.
    """
    issuer = IdentifierIssuer("_:b")
    node_map: dict[str, Any] = {"@default": {}}
    processor._create_node_map(expanded, node_map, "@default", issuer)
    options = {"produceGeneralizedRdf": False, "processingMode": "json-ld-1.1"}
    return {
        name: processor._graph_to_rdf(graph, issuer, options)
        for name, graph in sorted(node_map.items())
        if name == "@default" or _ABSOLUTE_IRI.match(name)
    }


def _find_cause(exc: BaseException, kind: type[Exception]) -> Exception | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def canonicalize_rdfc(document: Mapping[str, Any]) -> str:
    """Return the RDFC-1.0 canonical N-Quads of a JSON-LD document, in safe mode.

    pyld 3.3 calls RDFC-1.0 by its former name ``URDNA2015`` (the algorithms are the same).
    The input is not modified. Raises :class:`UnknownContext`, :class:`UnsafeJsonLd` or
    :class:`InvalidJsonLd`.
    """
    dropped: list[str | None] = []
    processor = _pyld.JsonLdProcessor(on_property_dropped=dropped.append)
    try:
        with _PYLD_LOCK:
            options: dict[str, Any] = {
                "documentLoader": document_loader,
                "contextResolver": ContextResolver(_RESOLVED_CONTEXTS, document_loader),
                # None keeps relative IRIs relative, so that _check_safe sees them; with ""
                # pyld 3.3 would silently resolve them against http://example.org/base/.
                "base": None,
                "processingMode": "json-ld-1.1",
            }
            expanded = processor.expand(dict(document), options)
            if dropped:
                raise UnsafeJsonLd("a property is not defined by any context")
            _check_safe(expanded)
            dataset = _to_dataset(processor, expanded)
            return str(_BoundedRdfc().main(dataset, {"format": "application/n-quads"}))
    except InvalidInput:
        raise
    except RecursionError as exc:
        raise InvalidJsonLd("JSON-LD document is nested too deeply") from exc
    except Exception as exc:  # pyld raises many types on hostile input; all are input errors
        unknown = _find_cause(exc, UnknownContext)
        if unknown is not None:
            raise UnknownContext(str(unknown), **getattr(unknown, "extra", {})) from exc
        limit = _find_cause(exc, InvalidJsonLd)
        if limit is not None:
            raise InvalidJsonLd(str(limit)) from exc
        message = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise InvalidJsonLd(f"JSON-LD processing failed: {message}") from exc
