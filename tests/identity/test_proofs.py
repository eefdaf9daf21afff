"""Data Integrity EdDSA proofs: the W3C test vectors byte for byte, then every failure path.

No test may reach the network: the autouse ``no_network`` fixture makes any socket use fail, so
a context fetched remotely would surface as an error instead of a silent download.
"""

from __future__ import annotations

import copy
import hashlib
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from identity import jsonld
from identity.jsonld import (
    ZHIXIN_IDENTITY_CONTEXT,
    InvalidJsonLd,
    UnknownContext,
    UnsafeJsonLd,
    bundled_context,
    bundled_context_urls,
    canonicalize_rdfc,
    document_loader,
)
from identity.multikey import (
    InvalidDid,
    decode_private_multikey,
    decode_public_multikey,
    did_key_from_public_key,
    public_key_from_did_key,
    verification_method_id,
)
from identity.proofs import (
    EDDSA_JCS_2022,
    EDDSA_RDFC_2022,
    ProofGenerationError,
    ProofResult,
    add_proof,
    signing_input,
    verify_proof,
)

VECTORS = Path(__file__).parent / "vectors"
KEY_PAIR = json.loads((VECTORS / "keyPair.json").read_text())
PRIVATE_KEY = decode_private_multikey(KEY_PAIR["privateKeyMultibase"])
PUBLIC_KEY = decode_public_multikey(KEY_PAIR["publicKeyMultibase"])
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
CREATED = "2023-02-24T23:36:38Z"
SUITES = [EDDSA_JCS_2022, EDDSA_RDFC_2022]

# file names per suite in w3c/vc-di-eddsa TestVectors/
FILES = {
    EDDSA_JCS_2022: {
        "config": "proofConfigJCS.json",
        "canon_doc": "canonDocJCS.txt",
        "doc_hash": "docHashJCS.txt",
        "canon_proof": "proofCanonJCS.txt",
        "proof_hash": "proofHashJCS.txt",
        "combined": "combinedHashJCS.txt",
        "sig_hex": "sigHexJCS.txt",
        "sig_b58": "sigBTC58JCS.txt",
        "signed": "signedJCS.json",
    },
    EDDSA_RDFC_2022: {
        "config": "proofConfigDataInt.json",
        "canon_doc": "canonDocDataInt.txt",
        "doc_hash": "docHashDataInt.txt",
        "canon_proof": "proofCanonDataInt.txt",
        "proof_hash": "proofHashDataInt.txt",
        "combined": "combinedHashDataInt.txt",
        "sig_hex": "sigHexDataInt.txt",
        "sig_b58": "sigBTC58DataInt.txt",
        "signed": "signedDataInt.json",
    },
}


def vector_bytes(suite: str, name: str) -> bytes:
    return (VECTORS / suite / FILES[suite][name]).read_bytes()


def vector_json(suite: str, name: str) -> dict[str, Any]:
    return json.loads(vector_bytes(suite, name))  # type: ignore[no-any-return]


def unsigned() -> dict[str, Any]:
    return json.loads((VECTORS / "unsigned.json").read_text())  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail loudly on any attempt to resolve a name or open a connection."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    yield


# ---------------------------------------------------------------------------------------------
# W3C test vectors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suite", SUITES)
def test_vector_canonical_forms_and_hashes(suite: str) -> None:
    config = vector_json(suite, "config")
    data = signing_input(unsigned(), config, suite)
    assert data.canonical_document == vector_bytes(suite, "canon_doc")
    assert data.canonical_proof_config == vector_bytes(suite, "canon_proof")
    doc_hash = hashlib.sha256(data.canonical_document).hexdigest()
    proof_hash = hashlib.sha256(data.canonical_proof_config).hexdigest()
    assert doc_hash.encode() == vector_bytes(suite, "doc_hash")
    assert proof_hash.encode() == vector_bytes(suite, "proof_hash")
    assert data.hash_data.hex().encode() == vector_bytes(suite, "combined")
    assert PRIVATE_KEY.sign(data.hash_data).hex().encode() == vector_bytes(suite, "sig_hex")


@pytest.mark.parametrize("suite", SUITES)
def test_vector_add_proof_reproduces_signed_credential(suite: str) -> None:
    config = vector_json(suite, "config")
    signed = add_proof(
        unsigned(),
        private_key=PRIVATE_KEY,
        verification_method=config["verificationMethod"],
        proof_purpose=config["proofPurpose"],
        cryptosuite=suite,
        created=config["created"],
    )
    assert signed == vector_json(suite, "signed")
    assert signed["proof"]["proofValue"].encode() == vector_bytes(suite, "sig_b58")


@pytest.mark.parametrize("suite", SUITES)
def test_vector_signed_credential_verifies(suite: str) -> None:
    signed = vector_json(suite, "signed")
    by_key = verify_proof(signed, public_key=PUBLIC_KEY)
    by_did = verify_proof(signed, resolve_key=public_key_from_did_key)
    for result in (by_key, by_did):
        assert result == ProofResult(
            verified=True,
            verification_method=signed["proof"]["verificationMethod"],
            cryptosuite=suite,
            proof_purpose="assertionMethod",
            created=CREATED,
            error=None,
        )


@pytest.mark.parametrize("name", ["signedJCS.json", "signedDataInt.json"])
def test_earlier_vector_revisions_verify(name: str) -> None:
    signed = json.loads((VECTORS / "earlier-revisions" / name).read_text())
    assert signed["proof"]["verificationMethod"].startswith("https://vc.example/issuers/5678#")
    assert verify_proof(signed, public_key=PUBLIC_KEY).verified


# ---------------------------------------------------------------------------------------------
# zhixin identity credentials
# ---------------------------------------------------------------------------------------------

ISSUER_DID = did_key_from_public_key(PUBLIC_KEY)
ISSUER_VM = verification_method_id(ISSUER_DID)


def identity_credential() -> dict[str, Any]:
    """A ~1 KB zhixin identity credential (synthetic person; the id number is a test value)."""
    return {
        "@context": ["https://www.w3.org/ns/credentials/v2", ZHIXIN_IDENTITY_CONTEXT],
        "id": "urn:uuid:3f1c9a52-7d0e-4c5b-9a61-0d2b7e4f8a10",
        "type": ["VerifiableCredential", "ZhixinIdentityCredential"],
        "name": "智信 Resident Identity Credential",
        "description": "Identity verified in person at the district service centre.",
        "issuer": ISSUER_DID,
        "validFrom": "2025-03-01T08:00:00Z",
        "validUntil": "2030-03-01T08:00:00Z",
        "credentialSubject": {
            "id": "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
            "verifiedName": "张三",
            "residentIdNumber": "11010519491231002X",
            "verificationLevel": "L3",
            "residenceDistrict": "北京市西城区",
        },
        "credentialStatus": {
            "id": "https://zhixin.example/status/1#94567",
            "type": "BitstringStatusListEntry",
            "statusPurpose": "revocation",
            "statusListIndex": "94567",
            "statusListCredential": "https://zhixin.example/status/1",
        },
    }


def sign(
    document: dict[str, Any] | None = None, suite: str = EDDSA_JCS_2022, **options: Any
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "private_key": PRIVATE_KEY,
        "verification_method": ISSUER_VM,
        "cryptosuite": suite,
        "created": "2025-03-01T08:00:00Z",
    }
    kwargs.update(options)
    return add_proof(identity_credential() if document is None else document, **kwargs)


def expect_failure(result: ProofResult, code: str) -> None:
    assert result.verified is False
    assert result.error is not None, result
    assert result.error.code == code, result.error
    assert result.error.message


@pytest.mark.parametrize("suite", SUITES)
def test_identity_credential_round_trip(suite: str) -> None:
    credential = identity_credential()
    before = copy.deepcopy(credential)
    signed = sign(credential, suite)
    assert credential == before  # input untouched
    assert sign(credential, suite) == signed  # deterministic
    assert len(json.dumps(identity_credential(), ensure_ascii=False).encode()) > 900
    result = verify_proof(signed, resolve_key=public_key_from_did_key)
    assert result.verified and result.error is None
    assert result.verification_method == ISSUER_VM and result.cryptosuite == suite
    assert ("@context" in signed["proof"]) is (suite == EDDSA_JCS_2022)


def test_zhixin_context_is_protected_and_defines_the_identity_terms() -> None:
    ctx = bundled_context(ZHIXIN_IDENTITY_CONTEXT)["@context"]
    assert ctx["@protected"] is True
    for term in ("verifiedName", "residentIdNumber", "verificationLevel", "residenceDistrict"):
        assert ctx[term] == f"https://zhixin.example/vocab#{term}"
    nquads = canonicalize_rdfc(identity_credential())
    assert '<https://zhixin.example/vocab#verifiedName> "张三" .' in nquads
    # a later context may not redefine a protected term
    hostile = identity_credential()
    hostile["@context"].append({"verifiedName": "https://evil.example/name"})
    with pytest.raises(InvalidJsonLd):
        canonicalize_rdfc(hostile)


# ---------------------------------------------------------------------------------------------
# Negative cases: each gives a precise failure, none raises
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suite", SUITES)
def test_tampered_claim(suite: str) -> None:
    signed = sign(suite=suite)
    signed["credentialSubject"]["verificationLevel"] = "L4"
    expect_failure(verify_proof(signed, public_key=PUBLIC_KEY), "invalid-signature")


@pytest.mark.parametrize("suite", SUITES)
def test_vector_tampered_claim(suite: str) -> None:
    signed = vector_json(suite, "signed")
    signed["credentialSubject"]["alumniOf"] = "The School of Forgeries"
    expect_failure(verify_proof(signed, public_key=PUBLIC_KEY), "invalid-signature")


@pytest.mark.parametrize("suite", SUITES)
def test_tampered_proof_options(suite: str) -> None:
    signed = sign(suite=suite)
    signed["proof"]["created"] = "2025-03-01T08:00:01Z"
    expect_failure(verify_proof(signed, public_key=PUBLIC_KEY), "invalid-signature")


@pytest.mark.parametrize("suite", SUITES)
def test_tampered_proof_value(suite: str) -> None:
    signed = sign(suite=suite)
    value = signed["proof"]["proofValue"]
    flipped = value[:10] + ("2" if value[10] != "2" else "3") + value[11:]
    signed["proof"]["proofValue"] = flipped
    result = verify_proof(signed, public_key=PUBLIC_KEY)
    assert result.error is not None
    assert result.error.code in {"invalid-signature", "malformed-proof"}  # 64 bytes or not
    signed["proof"]["proofValue"] = vector_json(EDDSA_JCS_2022, "signed")["proof"]["proofValue"]
    expect_failure(verify_proof(signed, public_key=PUBLIC_KEY), "invalid-signature")


@pytest.mark.parametrize("suite", SUITES)
def test_wrong_key(suite: str) -> None:
    signed = sign(suite=suite)
    expect_failure(verify_proof(signed, public_key=OTHER_KEY.public_key()), "invalid-signature")
    # a key signed by someone else but naming our verification method
    forged = sign(suite=suite, private_key=OTHER_KEY)
    expect_failure(verify_proof(forged, resolve_key=public_key_from_did_key), "invalid-signature")


@pytest.mark.parametrize("suite", SUITES)
def test_wrong_purpose(suite: str) -> None:
    signed = sign(suite=suite, proof_purpose="authentication")
    expect_failure(verify_proof(signed, public_key=PUBLIC_KEY), "wrong-purpose")
    assert verify_proof(signed, public_key=PUBLIC_KEY, expected_purpose="authentication").verified


@pytest.mark.parametrize("suite", SUITES)
def test_challenge_and_domain(suite: str) -> None:
    signed = sign(suite=suite, challenge="nonce-123", domain="zhixin.example")
    ok = verify_proof(signed, public_key=PUBLIC_KEY, challenge="nonce-123", domain="zhixin.example")
    assert ok.verified
    assert verify_proof(signed, public_key=PUBLIC_KEY).verified  # not asked: not checked
    expect_failure(
        verify_proof(signed, public_key=PUBLIC_KEY, challenge="nonce-124"), "challenge-mismatch"
    )
    expect_failure(
        verify_proof(signed, public_key=PUBLIC_KEY, domain="evil.example"), "domain-mismatch"
    )
    unchallenged = sign(suite=suite)
    expect_failure(
        verify_proof(unchallenged, public_key=PUBLIC_KEY, challenge="nonce-123"),
        "challenge-mismatch",
    )
    expect_failure(
        verify_proof(unchallenged, public_key=PUBLIC_KEY, domain="zhixin.example"),
        "domain-mismatch",
    )
    # changing the challenge in the proof breaks the signature, so it cannot be replayed
    signed["proof"]["challenge"] = "nonce-999"
    expect_failure(
        verify_proof(signed, public_key=PUBLIC_KEY, challenge="nonce-999"), "invalid-signature"
    )


def test_domain_list_in_proof() -> None:
    signed = sign()
    signed["proof"]["domain"] = ["a.example", "zhixin.example"]
    result = verify_proof(signed, public_key=PUBLIC_KEY, domain="zhixin.example")
    expect_failure(result, "invalid-signature")  # domain matched; signature did not cover it


@pytest.mark.parametrize("suite", SUITES)
def test_missing_proof(suite: str) -> None:
    expect_failure(verify_proof(identity_credential(), public_key=PUBLIC_KEY), "proof-missing")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "z",
        "2HnFSSPPBzR36zdDgK8PbEHeXbR56YF24jwMpt3R1eHXQzJDMWS93FCzpvJpwTWd3GAVFuUfjoJdcnTMuVor51aX",
        "u" + "A" * 86,  # base64url multibase
        "z0OIl" + "1" * 80,  # characters outside base58btc
        "z" + "2" * 40,  # too short
        "z" + "2" * 100,  # too long
        42,
        None,
        ["z2HnFSS"],
    ],
)
@pytest.mark.parametrize("suite", SUITES)
def test_malformed_proof_value(suite: str, value: object) -> None:
    signed = sign(suite=suite)
    signed["proof"]["proofValue"] = value
    expect_failure(verify_proof(signed, public_key=PUBLIC_KEY), "malformed-proof")
    del signed["proof"]["proofValue"]
    expect_failure(verify_proof(signed, public_key=PUBLIC_KEY), "malformed-proof")


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("type", "Ed25519Signature2020", "unsupported-proof-type"),
        ("type", None, "unsupported-proof-type"),
        ("cryptosuite", "ecdsa-rdfc-2019", "unsupported-cryptosuite"),
        ("cryptosuite", ["eddsa-jcs-2022"], "unsupported-cryptosuite"),
        ("verificationMethod", "not an iri", "malformed-proof"),
        ("verificationMethod", {"id": ISSUER_VM}, "malformed-proof"),
        ("proofPurpose", ["assertionMethod"], "malformed-proof"),
        ("created", "2025-03-01", "malformed-proof"),
        ("created", "2025-02-30T00:00:00Z", "malformed-proof"),
        ("created", "2025-03-01T08:00:00", "malformed-proof"),  # no time zone
        ("expires", "soon", "malformed-proof"),
        ("challenge", 7, "malformed-proof"),
        ("domain", [], "malformed-proof"),
        ("domain", [1], "malformed-proof"),
    ],
)
def test_malformed_proof_fields(field: str, value: object, code: str) -> None:
    signed = sign()
    signed["proof"][field] = value
    expect_failure(verify_proof(signed, public_key=PUBLIC_KEY), code)


@pytest.mark.parametrize(
    "document",
    [
        None,
        [],
        "credential",
        {"proof": None},
        {"proof": "z2HnFSS"},
        {"proof": []},
        {"proof": [1]},
    ],
)
def test_malformed_documents(document: Any) -> None:
    result = verify_proof(document, public_key=PUBLIC_KEY)
    assert result.verified is False and result.error is not None
    assert result.error.code in {"malformed-document", "malformed-proof", "unsupported-proof-set"}


def test_proof_sets() -> None:
    signed = sign()
    one = {**signed, "proof": [signed["proof"]]}
    assert verify_proof(one, public_key=PUBLIC_KEY).verified
    two = {**signed, "proof": [signed["proof"], signed["proof"]]}
    expect_failure(verify_proof(two, public_key=PUBLIC_KEY), "unsupported-proof-set")


def test_expires_needs_now() -> None:
    signed = sign()
    signed["proof"]["expires"] = "2026-01-01T00:00:00Z"  # unsigned edit, but checked first
    late = datetime(2026, 1, 2, tzinfo=UTC)
    expect_failure(verify_proof(signed, public_key=PUBLIC_KEY, now=late), "proof-expired")
    early = datetime(2025, 6, 1, tzinfo=UTC)
    expect_failure(verify_proof(signed, public_key=PUBLIC_KEY, now=early), "invalid-signature")


def test_unresolvable_verification_method() -> None:
    signed = sign(verification_method="did:web:zhixin.example#key-1")
    expect_failure(
        verify_proof(signed, resolve_key=public_key_from_did_key), "key-resolution-failed"
    )

    def lookup(vm: str) -> Any:
        return {ISSUER_VM: "not a key"}[vm]

    expect_failure(verify_proof(sign(), resolve_key=lookup), "key-resolution-failed")
    with pytest.raises(InvalidDid):  # the resolver itself is strict
        public_key_from_did_key("did:web:zhixin.example#key-1")


def test_jcs_proof_context_must_prefix_document_context() -> None:
    signed = sign()
    signed["proof"]["@context"] = [ZHIXIN_IDENTITY_CONTEXT]
    expect_failure(verify_proof(signed, public_key=PUBLIC_KEY), "context-mismatch")
    # appending a context to the document after signing is allowed by eddsa-jcs-2022 ...
    vector = vector_json(EDDSA_JCS_2022, "signed")
    vector["@context"] = [*vector["@context"], ZHIXIN_IDENTITY_CONTEXT]
    assert verify_proof(vector, public_key=PUBLIC_KEY).verified
    # ... but not changing the signed ones
    vector["@context"] = list(reversed(vector["@context"]))
    expect_failure(verify_proof(vector, public_key=PUBLIC_KEY), "context-mismatch")


def test_rdfc_proof_context_must_equal_document_context() -> None:
    signed = sign(suite=EDDSA_RDFC_2022)
    signed["proof"]["@context"] = signed["@context"]
    assert verify_proof(signed, public_key=PUBLIC_KEY).verified
    signed["proof"]["@context"] = ["https://www.w3.org/ns/credentials/v2"]
    expect_failure(verify_proof(signed, public_key=PUBLIC_KEY), "context-mismatch")


REMOTE = "https://evil.example/contexts/v1"


def test_unknown_context_fails_without_network() -> None:
    signed = sign(suite=EDDSA_RDFC_2022)
    signed["@context"] = [*signed["@context"], REMOTE]
    result = verify_proof(signed, public_key=PUBLIC_KEY)
    expect_failure(result, "unknown-context")
    assert result.error is not None and REMOTE in result.error.message
    # a remote context nested inside an inline one is refused the same way
    signed["@context"][-1] = {"@context": REMOTE}
    signed["@context"][-1] = {"x": {"@id": "https://x.example/x", "@context": REMOTE}}
    signed["x"] = {"y": 1}
    expect_failure(verify_proof(signed, public_key=PUBLIC_KEY), "unknown-context")
    with pytest.raises(UnknownContext):
        sign({**identity_credential(), "@context": [REMOTE]}, suite=EDDSA_RDFC_2022)


def test_rdfc_safe_mode_rejects_undefined_terms() -> None:
    credential = identity_credential()
    credential["credentialSubject"]["nickname"] = "小张"  # no context defines it
    with pytest.raises(UnsafeJsonLd):
        sign(credential, suite=EDDSA_RDFC_2022)
    # undefined data added after signing would be invisible to RDFC: refuse, do not ignore
    signed = sign(suite=EDDSA_RDFC_2022)
    signed["credentialSubject"]["nickname"] = "小张"
    expect_failure(verify_proof(signed, public_key=PUBLIC_KEY), "unsafe-jsonld")
    signed = sign(suite=EDDSA_RDFC_2022)
    signed["type"].append("UndefinedCredentialType")
    expect_failure(verify_proof(signed, public_key=PUBLIC_KEY), "unsafe-jsonld")
    signed = sign(suite=EDDSA_RDFC_2022)
    signed["issuer"] = "relative/issuer"
    expect_failure(verify_proof(signed, public_key=PUBLIC_KEY), "unsafe-jsonld")


def test_rdfc_needs_context() -> None:
    credential = identity_credential()
    del credential["@context"]
    with pytest.raises(ProofGenerationError):
        sign(credential, suite=EDDSA_RDFC_2022)
    signed = sign(suite=EDDSA_RDFC_2022)
    del signed["@context"]
    expect_failure(verify_proof(signed, public_key=PUBLIC_KEY), "invalid-jsonld")


def test_jcs_rejects_non_json_numbers() -> None:
    signed = sign()
    signed["credentialSubject"]["verificationLevel"] = 2**60  # beyond I-JSON
    expect_failure(verify_proof(signed, public_key=PUBLIC_KEY), "invalid-json")
    with pytest.raises(ProofGenerationError):
        sign({**identity_credential(), "score": float("nan")})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cryptosuite": "eddsa-2022"}, "cryptosuite"),
        ({"created": "2025-03-01"}, "created"),
        ({"created": "yesterday"}, "created"),
        ({"verification_method": "key-1"}, "verification_method"),
        ({"proof_purpose": ""}, "proof_purpose"),
        ({"challenge": ""}, "challenge"),
        ({"domain": 3}, "domain"),
    ],
)
def test_add_proof_rejects_bad_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ProofGenerationError, match=message):
        sign(**options)


def test_add_proof_refuses_second_proof_and_programming_errors() -> None:
    with pytest.raises(ProofGenerationError, match="already has a proof"):
        sign(sign())
    with pytest.raises(TypeError):
        sign(private_key=PUBLIC_KEY)
    with pytest.raises(TypeError):
        verify_proof(sign())
    with pytest.raises(TypeError):
        verify_proof(sign(), public_key=PUBLIC_KEY, resolve_key=public_key_from_did_key)
    with pytest.raises(TypeError):
        verify_proof(sign(), public_key=PUBLIC_KEY, now=datetime(2025, 1, 1))


# ---------------------------------------------------------------------------------------------
# Never raises on hostile input
# ---------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=True)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
PROOF_FIELDS = ["type", "cryptosuite", "verificationMethod", "proofPurpose", "proofValue"]
DOC_FIELDS = ["@context", "type", "issuer", "credentialSubject", "id", "validFrom", "@id"]
SIGNED = {suite: sign(suite=suite) for suite in SUITES}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    suite=st.sampled_from(SUITES),
    where=st.sampled_from(["proof", "doc"]),
    field=st.sampled_from(PROOF_FIELDS + DOC_FIELDS + ["@context", "x"]),
    value=json_values,
)
def test_verify_never_raises(suite: str, where: str, field: str, value: Any) -> None:
    document = copy.deepcopy(SIGNED[suite])
    target = document["proof"] if where == "proof" else document
    target[field] = value
    result = verify_proof(document, public_key=PUBLIC_KEY)
    assert isinstance(result, ProofResult)
    assert result.verified is (result.error is None)


# ---------------------------------------------------------------------------------------------
# Bundled contexts and the loader
# ---------------------------------------------------------------------------------------------


def test_loader_serves_every_bundled_context_offline() -> None:
    urls = bundled_context_urls()
    assert {
        "https://www.w3.org/ns/credentials/v2",
        "https://www.w3.org/ns/credentials/examples/v2",
        "https://w3id.org/security/data-integrity/v1",
        "https://w3id.org/security/data-integrity/v2",
        "https://w3id.org/security/multikey/v1",
        "https://www.w3.org/ns/did/v1",
        ZHIXIN_IDENTITY_CONTEXT,
    } <= urls
    for url in urls:
        remote = document_loader(url)
        assert remote["documentUrl"] == url and "@context" in remote["document"]
        remote["document"]["@context"] = "mutated"
        assert document_loader(url)["document"]["@context"] != "mutated"  # copies out
        assert canonicalize_rdfc({"@context": url, "@id": "urn:x:1"}) == ""


@pytest.mark.parametrize(
    "url",
    [
        REMOTE,
        "https://www.w3.org/2018/credentials/v1",
        "http://www.w3.org/ns/credentials/v2",  # http, not https
        "https://www.w3.org/ns/credentials/v2/",
        "file:///etc/passwd",
    ],
)
def test_loader_refuses_everything_else(url: str) -> None:
    with pytest.raises(UnknownContext) as info:
        document_loader(url)
    assert info.value.code == "unknown-context"


def test_canonicalization_results_are_not_shared_between_documents() -> None:
    first = identity_credential()
    second = identity_credential()
    second["credentialSubject"]["verifiedName"] = "李四"
    assert canonicalize_rdfc(first) != canonicalize_rdfc(second)
    assert canonicalize_rdfc(first) == canonicalize_rdfc(identity_credential())


def test_invalid_json_ld_is_reported_as_input_error() -> None:
    for bad in (
        {"@context": 5},
        {"@context": {"@version": 2.0}},
        {"@context": ["https://www.w3.org/ns/credentials/v2"], "id": 5},
    ):
        with pytest.raises(InvalidJsonLd):
            canonicalize_rdfc(bad)
    assert jsonld.UnsafeJsonLd.code == "unsafe-jsonld"


def test_poison_graph_is_refused_quickly() -> None:
    """RDFC-1.0 on a blank-node clique is factorial; the work cap turns it into an error."""
    clique = [
        {"@id": f"_:b{i}", "https://zhixin.example/vocab#knows": [{"@id": f"_:b{j}"}]}
        for i in range(12)
        for j in range(12)
        if i != j
    ]
    with pytest.raises(InvalidJsonLd, match="work limit"):
        canonicalize_rdfc({"@graph": clique})
    signed = sign(suite=EDDSA_RDFC_2022)
    signed["evidence"] = {"@graph": clique}
    expect_failure(verify_proof(signed, public_key=PUBLIC_KEY), "invalid-jsonld")
