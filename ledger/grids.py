"""Community grids (网格) of the district: the off-chain area code an agency may give a record.

Invariants:
- The list is data (``ledger/data/grids.json``), checked on load: codes ``CC-<street>-<nn>``,
  unique, each under a declared street.
- A grid is never on chain: it is stored beside the accepted record in the outbox
  (``outbox.grid``) and never changes the record, its id or its signature. It only feeds
  aggregate statistics (:mod:`ledger.stats`).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from .errors import ConfigurationError, InvalidInput

__all__ = ["Grid", "GridCatalog", "Street", "UnknownGrid", "load_grids"]

_CODE = re.compile(r"CC-([A-Z]{2})-\d{2}")


class UnknownGrid(InvalidInput):
    code = "unknown-grid"


@dataclass(frozen=True)
class Street:
    code: str
    zh: str
    en: str


@dataclass(frozen=True)
class Grid:
    code: str
    street: Street
    zh: str
    en: str

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": {"zh": self.zh, "en": self.en},
            "street": {"code": self.street.code, "zh": self.street.zh, "en": self.street.en},
        }


class GridCatalog:
    def __init__(self, doc: dict[str, Any]) -> None:
        try:
            self.version = str(doc["version"])
            self.district = dict(doc["district"])
            streets = {s["code"]: Street(s["code"], s["zh"], s["en"]) for s in doc["streets"]}
            grids: dict[str, Grid] = {}
            for g in doc["grids"]:
                m = _CODE.fullmatch(g["code"])
                if m is None or m.group(1) != g["street"] or g["street"] not in streets:
                    raise ConfigurationError(f"grid {g['code']!r}: bad code or unknown street")
                if g["code"] in grids:
                    raise ConfigurationError(f"grid {g['code']!r} is listed twice")
                grids[g["code"]] = Grid(g["code"], streets[g["street"]], g["zh"], g["en"])
        except (KeyError, TypeError) as exc:
            raise ConfigurationError(f"grids file is malformed: {exc!r}") from None
        self.streets = streets
        self._grids = grids

    def __iter__(self) -> Any:
        return iter(self._grids.values())

    def __len__(self) -> int:
        return len(self._grids)

    def __contains__(self, code: object) -> bool:
        return code in self._grids

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(self._grids)

    def get(self, code: Any) -> Grid:
        """The grid of ``code``; :class:`UnknownGrid` (422) for anything not in the list."""
        if not isinstance(code, str) or code not in self._grids:
            shown = code if isinstance(code, str) and len(code) <= 40 else type(code).__name__
            raise UnknownGrid(
                f"unknown grid {shown!r}: not a community grid code of "
                f"{self.district.get('en', 'the district')} (see GET /v1/stats/grids)",
                field="grid",
            )
        return self._grids[code]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "district": self.district,
            "streets": [{"code": s.code, "zh": s.zh, "en": s.en} for s in self.streets.values()],
            "grids": [g.to_json() for g in self],
        }


@functools.lru_cache(maxsize=1)
def load_grids() -> GridCatalog:
    text = resources.files("ledger").joinpath("data", "grids.json").read_text(encoding="utf-8")
    return GridCatalog(json.loads(text))
