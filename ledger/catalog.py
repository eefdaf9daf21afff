"""The credit-record category catalog: data, validated on load, hashed for anchoring.

Categories are data, not code: ``ledger/data/categories.json`` ships the starter catalog and
a deployment may load its own file. Every credit record names exactly one category; the
category says what the record means, whom it may concern, its legal basis and its time
limits (publicity, retention, earliest repair).

Invariants enforced on load (a catalog violating any of them is rejected as a whole):

* ``code`` is a stable dotted ASCII slug and ``id`` a stable integer in 1..65535 (it goes on
  chain as ``uint16``); both are unique. Neither may ever be reused for another meaning.
* ``publicity_days <= retention_days``: a record is never shown for longer than it counts.
* The ``minor`` tier is not published or published for at most 90 days (SAMR Order 45
  Art. 13; minor conduct must not turn into long-lived public marks).
* ``repair_after_days`` is set exactly when ``repairable`` and lies within the retention
  period; ``good`` records are never repairable (there is nothing to repair).
* Every category has a non-empty ``legal_basis``: no collection without a legal basis.

The catalog's identity is :meth:`Catalog.canonical_hash`: SHA-256 over the RFC 8785
canonical JSON of the validated content, with categories ordered by id and subject kinds in
a fixed order, so whitespace, key order and entry order in the file do not change it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import rfc8785
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from identity.ids import SubjectKind
from ledger.errors import ConfigurationError, InvalidInput

__all__ = [
    "MINOR_MAX_PUBLICITY_DAYS",
    "Catalog",
    "Category",
    "InvalidCatalog",
    "Polarity",
    "Severity",
    "SubjectKindName",
    "UnknownCategory",
    "load_catalog",
]

MINOR_MAX_PUBLICITY_DAYS: Final = 90
"""Minor tier: publicity stops after 3 months at most (SAMR Order 45 Art. 13)."""

Polarity = Literal["good", "bad"]
Severity = Literal["minor", "general", "serious"]
SubjectKindName = Literal["person", "entity"]

_KIND_ORDER: Final[dict[str, int]] = {"person": 0, "entity": 1}

CategoryCode = Annotated[
    StrictStr,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$", max_length=64),
]
"""Dotted lower-case ASCII slug such as ``tax.arrears``."""
CategoryId = Annotated[StrictInt, Field(ge=1, le=65535)]
Days = Annotated[StrictInt, Field(ge=0, le=36525)]
Text = Annotated[StrictStr, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
Description = Annotated[
    StrictStr, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)
]
LegalBasis = Annotated[
    StrictStr, StringConstraints(strip_whitespace=True, min_length=1, max_length=600)
]
Unit = Annotated[StrictStr, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,15}$")]


class InvalidCatalog(InvalidInput):
    """A catalog failed validation; ``detail`` lists every problem with its location."""

    code = "invalid-catalog"

    def __init__(self, detail: str, *, problems: list[str] | None = None) -> None:
        super().__init__(detail, problems=problems or [detail])
        self.problems: list[str] = problems or [detail]


class UnknownCategory(InvalidInput):
    """A record named a category code or id the catalog does not have."""

    code = "unknown-category"

    def __init__(self, category: str | int) -> None:
        what = f"code {category!r}" if isinstance(category, str) else f"id {category}"
        super().__init__(f"unknown credit-record category {what}", category=category)
        self.category = category


class Category(BaseModel):
    """One kind of credit record.

    For ``bad`` records ``severity`` is the dishonesty tier that drives time limits; for
    ``good`` records it is the weight tier (``minor`` = everyday good conduct, not published).
    ``amount_unit`` says what a record's amount measures (``None``: records carry no amount).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: CategoryId
    code: CategoryCode
    name_zh: Text
    name_en: Text
    polarity: Polarity
    severity: Severity
    subject_kinds: tuple[SubjectKindName, ...] = Field(min_length=1)
    legal_basis: LegalBasis
    publicity_days: Days
    retention_days: Days
    repairable: StrictBool
    repair_after_days: Days | None
    amount_unit: Unit | None
    description_zh: Description
    description_en: Description

    @field_validator("subject_kinds")
    @classmethod
    def _canonical_kinds(cls, kinds: tuple[str, ...]) -> tuple[str, ...]:
        """Reject repeats and fix the order, so the file's order cannot change the hash."""
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"subject_kinds lists a kind twice: {list(kinds)}")
        return tuple(sorted(kinds, key=_KIND_ORDER.__getitem__))

    @model_validator(mode="after")
    def _time_limits(self) -> Category:
        """Cross-field rules; messages name the category code so a reviewer can find it."""
        where = f"category {self.code!r}"
        if self.retention_days < 1:
            raise ValueError(f"{where}: retention_days must be at least 1")
        if self.publicity_days > self.retention_days:
            raise ValueError(
                f"{where}: publicity_days ({self.publicity_days}) exceeds retention_days "
                f"({self.retention_days}); a record cannot be shown longer than it counts"
            )
        if self.severity == "minor" and self.publicity_days > MINOR_MAX_PUBLICITY_DAYS:
            raise ValueError(
                f"{where}: minor tier publicity_days ({self.publicity_days}) must be 0 or at "
                f"most {MINOR_MAX_PUBLICITY_DAYS} (SAMR Order 45 Art. 13)"
            )
        if self.polarity == "good" and self.repairable:
            raise ValueError(f"{where}: good records cannot be repairable")
        if self.repairable and self.repair_after_days is None:
            raise ValueError(f"{where}: repairable categories need repair_after_days")
        if not self.repairable and self.repair_after_days is not None:
            raise ValueError(f"{where}: repair_after_days is set but repairable is false")
        if self.repair_after_days is not None and self.repair_after_days > self.retention_days:
            raise ValueError(
                f"{where}: repair_after_days ({self.repair_after_days}) exceeds retention_days "
                f"({self.retention_days})"
            )
        return self

    @property
    def published(self) -> bool:
        """Whether records of this category are ever shown publicly."""
        return self.publicity_days > 0

    def applies_to(self, kind: str | int | SubjectKind) -> bool:
        """Whether a subject of ``kind`` may be the subject of such a record."""
        return SubjectKind.parse(kind).name.lower() in self.subject_kinds


class Catalog(BaseModel):
    """A validated, immutable set of categories, indexed by code and by id.

    Iterating yields the categories in id order. Build one with :func:`load_catalog`,
    :meth:`from_json` or :meth:`from_data`, which turn validation failures into
    :class:`InvalidCatalog` with every problem located.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1]
    version: Text
    categories: tuple[Category, ...] = Field(min_length=1)

    _by_code: dict[str, Category] = PrivateAttr(default_factory=dict)
    _by_id: dict[int, Category] = PrivateAttr(default_factory=dict)

    @field_validator("categories")
    @classmethod
    def _unique(cls, categories: tuple[Category, ...]) -> tuple[Category, ...]:
        """Codes and ids must be unique; then order by id (canonical, file order irrelevant)."""
        problems: list[str] = []
        seen_code: dict[str, int] = {}
        seen_id: dict[int, int] = {}
        for index, category in enumerate(categories):
            if category.code in seen_code:
                problems.append(
                    f"duplicate category code {category.code!r} at categories"
                    f"[{seen_code[category.code]}] and categories[{index}]"
                )
            else:
                seen_code[category.code] = index
            if category.id in seen_id:
                problems.append(
                    f"duplicate category id {category.id} at categories[{seen_id[category.id]}] "
                    f"({categories[seen_id[category.id]].code!r}) and categories[{index}] "
                    f"({category.code!r})"
                )
            else:
                seen_id[category.id] = index
        if problems:
            raise ValueError("; ".join(problems))
        return tuple(sorted(categories, key=lambda c: c.id))

    def model_post_init(self, context: Any, /) -> None:
        self._by_code = {c.code: c for c in self.categories}
        self._by_id = {c.id: c for c in self.categories}

    @classmethod
    def from_data(cls, data: Any) -> Catalog:
        """Validate already-parsed JSON data."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise _invalid(exc, data) from None

    @classmethod
    def from_json(cls, text: str | bytes) -> Catalog:
        """Parse and validate catalog JSON."""
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidCatalog(f"catalog is not valid JSON: {exc}") from None
        return cls.from_data(data)

    def by_code(self, code: str) -> Category:
        """The category with this code, or :class:`UnknownCategory`."""
        try:
            return self._by_code[code]
        except (KeyError, TypeError):
            raise UnknownCategory(code) from None

    def by_id(self, category_id: int) -> Category:
        """The category with this on-chain id, or :class:`UnknownCategory`."""
        try:
            return self._by_id[category_id]
        except (KeyError, TypeError):
            raise UnknownCategory(category_id) from None

    def __iter__(self) -> Iterator[Category]:  # type: ignore[override]
        return iter(self.categories)

    def __len__(self) -> int:
        return len(self.categories)

    def __contains__(self, item: object) -> bool:
        """``code in catalog`` or ``id in catalog``."""
        if isinstance(item, str):
            return item in self._by_code
        if isinstance(item, int) and not isinstance(item, bool):
            return item in self._by_id
        return False

    def canonical_json(self) -> bytes:
        """RFC 8785 (JCS) serialization of the validated content; the bytes that get hashed."""
        return rfc8785.dumps(self.model_dump(mode="json"))

    def canonical_hash(self) -> bytes:
        """SHA-256 of :meth:`canonical_json`, 32 bytes: the catalog version to anchor on chain."""
        return hashlib.sha256(self.canonical_json()).digest()


def _location(loc: tuple[int | str, ...], data: Any) -> str:
    """``categories[3] ('tax.arrears').polarity`` from a pydantic error location."""
    parts: list[str] = []
    for i, part in enumerate(loc):
        if isinstance(part, int):
            parts.append(f"[{part}]")
            # Name the entry, unless the message (a cross-field rule) already does.
            if i == 1 and loc[0] == "categories" and len(loc) > 2:
                code = _raw_code(data, part)
                if code is not None:
                    parts.append(f" ({code!r})")
        else:
            parts.append(f".{part}" if parts else part)
    return "".join(parts) or "catalog"


def _raw_code(data: Any, index: int) -> str | None:
    try:
        code = data["categories"][index]["code"]
    except (KeyError, IndexError, TypeError):
        return None
    return code if isinstance(code, str) else None


def _invalid(exc: ValidationError, data: Any) -> InvalidCatalog:
    problems: list[str] = []
    for error in exc.errors(include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{_location(tuple(error['loc']), data)}: {message}")
    return InvalidCatalog(
        f"invalid category catalog: {len(problems)} problem(s): " + "; ".join(problems),
        problems=problems,
    )


def load_catalog(path: Path | None = None) -> Catalog:
    """Load and validate a catalog; by default the packaged ``ledger/data/categories.json``.

    The packaged file is read through :mod:`importlib.resources` so it works from a wheel
    or a zip as well as from a source checkout.
    """
    if path is None:
        text = resources.files("ledger").joinpath("data", "categories.json").read_bytes()
    else:
        try:
            text = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read category catalog {path}: {exc.strerror or exc}"
            ) from None
    return Catalog.from_json(text)
