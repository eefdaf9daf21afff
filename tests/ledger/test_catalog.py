"""Tests for ledger.catalog: the starter catalog, validation on load, lookups, canonical hash."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import rfc8785

from identity.ids import SubjectKind
from ledger.catalog import Catalog, Category, InvalidCatalog, UnknownCategory, load_catalog
from ledger.errors import ConfigurationError, InvalidInput

PACKAGED = Path(__file__).resolve().parents[2] / "ledger" / "data" / "categories.json"


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(PACKAGED.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def entry(raw: dict[str, Any], code: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in raw["categories"] if c["code"] == code)
    return found


def mutated(raw: dict[str, Any], target: str, /, **changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(raw)
    entry(data, target).update(changes)
    return data


def rejected(data: Any) -> InvalidCatalog:
    with pytest.raises(InvalidCatalog) as info:
        Catalog.from_data(data)
    assert isinstance(info.value, InvalidInput)
    return info.value


# --- the starter catalog -----------------------------------------------------------------


def test_starter_catalog_loads_from_package_resources(catalog: Catalog) -> None:
    assert 14 <= len(catalog) <= 20
    assert catalog == load_catalog(PACKAGED)
    ids = [c.id for c in catalog]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(1 <= i <= 65535 for i in ids)


def test_starter_catalog_has_both_polarities_and_all_tiers(catalog: Catalog) -> None:
    assert {c.polarity for c in catalog} == {"good", "bad"}
    assert {c.severity for c in catalog if c.polarity == "bad"} == {"minor", "general", "serious"}
    for code in (
        "tax.arrears",
        "court.judgment_defaulter",
        "admin_penalty.minor",
        "admin_penalty.general",
        "admin_penalty.serious",
        "market.abnormal_operation",
        "food_drug.serious_violation",
        "labor.wage_arrears",
        "contract.fraud",
        "tax.grade_a",
        "volunteer.service_hours",
        "health.blood_donation",
        "honour.commendation",
        "charity.donation",
    ):
        assert code in catalog
    assert all(c.legal_basis for c in catalog)


def test_starter_time_limits_follow_the_domain_rules(catalog: Catalog) -> None:
    general = catalog.by_code("admin_penalty.general")
    serious = catalog.by_code("admin_penalty.serious")
    assert (general.publicity_days, general.repair_after_days) == (365, 90)
    assert (serious.publicity_days, serious.repair_after_days) == (1095, 365)
    assert "527" in general.legal_basis and "527" in serious.legal_basis
    assert catalog.by_code("admin_penalty.minor").publicity_days == 90
    warning = catalog.by_code("admin_penalty.warning")
    assert not warning.published and warning.publicity_days == 0
    for c in catalog:
        if c.polarity == "bad" and c.severity != "minor":
            assert c.retention_days == 1826  # 5 years (Shanghai regulations Art. 35)
        if c.polarity == "good":
            assert not c.repairable


def test_units_and_subject_kinds(catalog: Catalog) -> None:
    assert catalog.by_code("volunteer.service_hours").amount_unit == "hours"
    assert catalog.by_code("health.blood_donation").amount_unit == "ml"
    assert catalog.by_code("charity.donation").amount_unit == "CNY"
    assert catalog.by_code("court.judgment_defaulter").amount_unit == "CNY"
    abnormal = catalog.by_code("market.abnormal_operation")
    assert abnormal.applies_to(SubjectKind.ENTITY) and not abnormal.applies_to("person")
    blood = catalog.by_code("health.blood_donation")
    assert blood.applies_to(1) and not blood.applies_to(SubjectKind.ENTITY)


# --- lookups -----------------------------------------------------------------------------


def test_lookup_by_code_and_id(catalog: Catalog) -> None:
    arrears = catalog.by_code("tax.arrears")
    assert catalog.by_id(arrears.id) is arrears
    assert arrears.id in catalog and "tax.arrears" in catalog
    assert "tax" not in catalog and 0 not in catalog and True not in catalog


@pytest.mark.parametrize("code", ["tax.arrear", "", "TAX.ARREARS"])
def test_unknown_code(catalog: Catalog, code: str) -> None:
    with pytest.raises(UnknownCategory) as info:
        catalog.by_code(code)
    assert isinstance(info.value, InvalidInput)
    assert repr(code) in str(info.value)
    assert info.value.category == code and info.value.extra["category"] == code
    assert info.value.code == "unknown-category"


@pytest.mark.parametrize("category_id", [0, 9999, 65535])
def test_unknown_id(catalog: Catalog, category_id: int) -> None:
    with pytest.raises(UnknownCategory) as info:
        catalog.by_id(category_id)
    assert f"id {category_id}" in str(info.value)


def test_iteration_is_in_id_order_whatever_the_file_order(raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    data["categories"].reverse()
    ordered = [c.code for c in Catalog.from_data(data)]
    assert ordered == [c.code for c in sorted(Catalog.from_data(raw), key=lambda c: c.id)]


# --- validation failures -----------------------------------------------------------------


def test_duplicate_code_rejected(raw: dict[str, Any]) -> None:
    data = mutated(raw, "contract.fraud", code="tax.arrears")
    exc = rejected(data)
    assert "duplicate category code 'tax.arrears'" in str(exc)
    first = next(i for i, c in enumerate(data["categories"]) if c["code"] == "tax.arrears")
    assert f"categories[{first}]" in str(exc)


def test_duplicate_id_rejected(raw: dict[str, Any]) -> None:
    exc = rejected(mutated(raw, "contract.fraud", id=entry(raw, "tax.arrears")["id"]))
    assert f"duplicate category id {entry(raw, 'tax.arrears')['id']}" in str(exc)
    assert "'tax.arrears'" in str(exc) and "'contract.fraud'" in str(exc)


@pytest.mark.parametrize(
    ("changes", "fragments"),
    [
        ({"polarity": "neutral"}, ["('tax.arrears').polarity", "'good' or 'bad'"]),
        ({"severity": "grave"}, ["('tax.arrears').severity", "'minor', 'general' or 'serious'"]),
        (
            {"publicity_days": 2000},
            ["publicity_days (2000) exceeds retention_days (1826)", "'tax.arrears'"],
        ),
        ({"repair_after_days": 5000}, ["repair_after_days (5000) exceeds retention_days"]),
        ({"repair_after_days": None}, ["repairable categories need repair_after_days"]),
        ({"repairable": False}, ["repair_after_days is set but repairable is false"]),
        ({"retention_days": 0, "publicity_days": 0, "repair_after_days": 0}, ["at least 1"]),
        ({"id": 0}, ["('tax.arrears').id", "greater than or equal to 1"]),
        ({"id": 65536}, ["('tax.arrears').id", "less than or equal to 65535"]),
        ({"id": "301"}, ["('tax.arrears').id", "valid integer"]),
        ({"repairable": 1}, ["('tax.arrears').repairable", "valid boolean"]),
        ({"code": "Tax Arrears"}, ["code", "pattern"]),
        ({"code": "tax"}, ["code", "pattern"]),
        ({"subject_kinds": []}, ["subject_kinds", "at least 1"]),
        ({"subject_kinds": ["person", "robot"]}, ["subject_kinds[1]", "'person' or 'entity'"]),
        ({"subject_kinds": ["person", "person"]}, ["lists a kind twice"]),
        ({"legal_basis": "  "}, ["legal_basis", "at least 1 character"]),
        ({"amount_unit": "per cent"}, ["amount_unit", "pattern"]),
        ({"colour": "red"}, ["('tax.arrears').colour", "Extra inputs are not permitted"]),
    ],
)
def test_invalid_entry_rejected_with_precise_message(
    raw: dict[str, Any], changes: dict[str, Any], fragments: list[str]
) -> None:
    exc = rejected(mutated(raw, "tax.arrears", **changes))
    for fragment in fragments:
        assert fragment in str(exc), str(exc)
    assert len(exc.problems) == 1


def test_missing_field_rejected(raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    del entry(data, "tax.arrears")["legal_basis"]
    assert "('tax.arrears').legal_basis: Field required" in str(rejected(data))


def test_minor_tier_publicity_capped_at_90_days(raw: dict[str, Any]) -> None:
    exc = rejected(mutated(raw, "admin_penalty.minor", publicity_days=91))
    assert "minor tier publicity_days (91) must be 0 or at most 90" in str(exc)
    assert Catalog.from_data(mutated(raw, "admin_penalty.minor", publicity_days=0))


def test_good_records_cannot_be_repairable(raw: dict[str, Any]) -> None:
    exc = rejected(mutated(raw, "tax.grade_a", repairable=True, repair_after_days=0))
    assert "'tax.grade_a': good records cannot be repairable" in str(exc)


def test_every_problem_is_reported(raw: dict[str, Any]) -> None:
    data = mutated(raw, "tax.arrears", polarity="neutral")
    entry(data, "contract.fraud")["publicity_days"] = 9999
    exc = rejected(data)
    assert len(exc.problems) == 2
    assert exc.extra["problems"] == exc.problems


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"version": "x", "categories": []}, "schema_version: Field required"),
        ({"schema_version": 2, "version": "x", "categories": []}, "schema_version"),
        ({"schema_version": 1, "version": "x", "categories": []}, "categories: "),
        ([], "catalog: "),
    ],
)
def test_malformed_catalog_rejected(data: Any, fragment: str) -> None:
    assert fragment in str(rejected(data))


def test_invalid_json_rejected() -> None:
    with pytest.raises(InvalidCatalog, match="not valid JSON"):
        Catalog.from_json(b'{"schema_version": 1,')


def test_load_from_path(tmp_path: Path, raw: dict[str, Any], catalog: Catalog) -> None:
    path = tmp_path / "cat.json"
    path.write_text(json.dumps(raw, indent=4, ensure_ascii=True), encoding="utf-8")
    assert load_catalog(path) == catalog
    path.write_text(json.dumps(mutated(raw, "tax.arrears", polarity="x")), encoding="utf-8")
    with pytest.raises(InvalidCatalog):
        load_catalog(path)
    with pytest.raises(ConfigurationError, match="cannot read category catalog"):
        load_catalog(tmp_path / "missing.json")


# --- canonical hash ----------------------------------------------------------------------


def _reverse_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _reverse_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reverse_keys(v) for v in value]
    return value


def test_canonical_hash_is_sha256_of_jcs(catalog: Catalog) -> None:
    digest = catalog.canonical_hash()
    assert isinstance(digest, bytes) and len(digest) == 32
    assert digest == hashlib.sha256(catalog.canonical_json()).digest()
    assert catalog.canonical_json() == rfc8785.dumps(json.loads(catalog.canonical_json()))


def test_canonical_hash_stable_under_key_and_entry_reordering(
    raw: dict[str, Any], catalog: Catalog
) -> None:
    reordered = _reverse_keys(raw)
    assert list(reordered) != list(raw)
    reordered["categories"].reverse()
    entry(reordered, "tax.arrears")["subject_kinds"] = ["entity", "person"]
    text = json.dumps(reordered, indent=1, ensure_ascii=True)
    assert Catalog.from_json(text).canonical_hash() == catalog.canonical_hash()


@pytest.mark.parametrize(
    "changes",
    [{"publicity_days": 364}, {"name_en": "Unpaid tax"}, {"subject_kinds": ["person"]}],
)
def test_canonical_hash_changes_with_content(
    raw: dict[str, Any], catalog: Catalog, changes: dict[str, Any]
) -> None:
    other = Catalog.from_data(mutated(raw, "tax.arrears", **changes))
    assert other.canonical_hash() != catalog.canonical_hash()


def test_category_is_immutable(catalog: Catalog) -> None:
    category = catalog.by_code("tax.arrears")
    with pytest.raises(ValueError):
        category.publicity_days = 1  # type: ignore[misc]
    assert isinstance(category, Category)
