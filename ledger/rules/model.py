"""Rule sets and the measures catalog: published data, validated before anything evaluates them.

A rule set is a YAML or JSON document (``ledger/data/rules/*.yaml``): identity (``id``,
``version``), names and descriptions in Chinese and English, its legal basis, the lists it
may put subjects on, and its rules. Each rule names its category ``scope`` (the only records
it sees: data minimisation, and what lets evaluation skip subjects), a CEL ``condition`` for
entry, a CEL ``exit_condition`` for repair eligibility, the lists it puts a subject on,
the publicity period of the listing and the measures (ids in ``ledger/data/measures.json``).

Invariants enforced at load (a failing document is rejected whole, with every problem):

* ids are unique; every list, measure and category code named anywhere exists;
* a rule's expressions pass :func:`ledger.rules.expr.check_expression`; problems carry the
  rule id, the field and the line/column inside the expression, and the line/column in the
  file when the document came from text;
* reward measures only on red lists, punishment measures only on black lists, and every
  measure targets a subject kind the rule applies to (``legal_representative`` = entity);
* the YAML loader keeps strings as strings (no implicit dates) so the parsed document is
  plain JSON data; :meth:`RuleSet.canonical_hash` is SHA-256 of its RFC 8785 form, so YAML and
  JSON spellings of one document, key order and whitespace do not change it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import rfc8785
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
)

from ledger.catalog import Catalog
from ledger.errors import ConfigurationError, InvalidInput
from ledger.rules.expr import check_expression

__all__ = [
    "BUILTIN_LISTS",
    "InvalidRuleSet",
    "ListDecl",
    "Measure",
    "MeasureCatalog",
    "Rule",
    "RuleProblem",
    "RuleSet",
    "load_measures",
    "load_rule_set",
]

Slug = Annotated[StrictStr, StringConstraints(pattern=r"^[a-z][a-z0-9_.\-]{0,63}$")]
Text = Annotated[StrictStr, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
LongText = Annotated[
    StrictStr, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)
]
Expr = Annotated[StrictStr, StringConstraints(min_length=1, max_length=4000)]
Kind = Literal["person", "entity"]
Target = Literal["person", "entity", "legal_representative"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Measure(_Frozen):
    """One joint reward or punishment measure and who applies it to whom."""

    id: Slug
    kind: Literal["reward", "punishment"]
    agency: Slug
    targets: tuple[Target, ...] = Field(min_length=1)
    name_zh: Text
    name_en: Text
    description_zh: LongText
    description_en: LongText
    legal_basis: LongText


class MeasureCatalog(_Frozen):
    """The published measures; a rule may only name measures listed here."""

    schema_version: Literal[1]
    version: Text
    measures: tuple[Measure, ...] = Field(min_length=1)
    _by_id: dict[str, Measure] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        self._by_id = {m.id: m for m in self.measures}
        if len(self._by_id) != len(self.measures):
            raise ValueError("duplicate measure id")

    def get(self, measure_id: str) -> Measure | None:
        return self._by_id.get(measure_id)

    def __contains__(self, measure_id: object) -> bool:
        return measure_id in self._by_id

    def canonical_hash(self) -> bytes:
        return hashlib.sha256(rfc8785.dumps(self.model_dump(mode="json"))).digest()


class ListDecl(_Frozen):
    """A list subjects can be put on; ``kind`` says whether measures reward or punish."""

    id: Slug
    kind: Literal["red", "black"]
    name_zh: Text
    name_en: Text


BUILTIN_LISTS: Final = (
    ListDecl(id="red", kind="red", name_zh="红名单", name_en="Red list"),
    ListDecl(id="black", kind="black", name_zh="黑名单", name_en="Black list"),
)


class Rule(_Frozen):
    """One published rule; see the module docstring for the meaning of each part."""

    id: Slug
    name_zh: Text
    name_en: Text
    legal_basis: LongText
    subject_kinds: tuple[Kind, ...] = Field(min_length=1)
    scope: tuple[StrictStr, ...] = Field(min_length=1)
    condition: Expr
    exit_condition: Expr
    outcomes: tuple[Slug, ...] = Field(min_length=1)
    entry_conditions_zh: LongText
    entry_conditions_en: LongText
    exit_conditions_zh: LongText
    exit_conditions_en: LongText
    publicity_days: Annotated[StrictInt, Field(ge=0, le=36525)]
    measures: tuple[Slug, ...] = ()


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """Where a rule set is wrong: rule id (or None), field, expression and file positions."""

    rule: str | None
    field: str
    message: str
    line: int | None = None
    column: int | None = None
    file_line: int | None = None
    file_column: int | None = None

    def __str__(self) -> str:
        where = f"rule {self.rule!r}" if self.rule else "rule set"
        pos = f" at {self.line}:{self.column}" if self.line is not None else ""
        in_file = f" (file {self.file_line}:{self.file_column})" if self.file_line else ""
        return f"{where}, {self.field}{pos}{in_file}: {self.message}"


class InvalidRuleSet(InvalidInput):
    """A rule set failed validation; ``problems`` lists each with rule id and position."""

    code = "invalid-rule-set"

    def __init__(self, problems: list[RuleProblem]) -> None:
        detail = f"invalid rule set: {len(problems)} problem(s): " + "; ".join(map(str, problems))
        super().__init__(detail, problems=[str(p) for p in problems])
        self.problems = problems


class RuleSet(_Frozen):
    """A validated rule set. Build with :meth:`from_text` / :meth:`from_data` / loaders."""

    schema_version: Literal[1]
    id: Slug
    version: Text
    name_zh: Text
    name_en: Text
    description_zh: LongText
    description_en: LongText
    legal_basis: tuple[LongText, ...] = Field(min_length=1)
    lists: tuple[ListDecl, ...] = ()
    rules: tuple[Rule, ...] = Field(min_length=1)

    _document: Any = PrivateAttr(default=None)
    _lists: dict[str, ListDecl] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        self._lists = {d.id: d for d in (*BUILTIN_LISTS, *self.lists)}

    def list_decl(self, list_id: str) -> ListDecl:
        return self._lists[list_id]

    @property
    def list_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._lists))

    def canonical_json(self) -> bytes:
        """RFC 8785 form of the parsed document as published (what gets anchored)."""
        document = self._document if self._document is not None else self.model_dump(mode="json")
        return rfc8785.dumps(document)

    def canonical_hash(self) -> bytes:
        """SHA-256 of :meth:`canonical_json`: the rule-set version hash anchored on chain."""
        return hashlib.sha256(self.canonical_json()).digest()

    @classmethod
    def from_data(
        cls,
        data: Any,
        catalog: Catalog,
        measures: MeasureCatalog,
        *,
        positions: dict[tuple[int, str], tuple[int, int, str]] | None = None,
    ) -> RuleSet:
        """Validate parsed data against the catalog and the measures; raise on any problem."""
        try:
            rule_set = cls.model_validate(data)
        except ValidationError as exc:
            raise InvalidRuleSet(_pydantic_problems(exc, data)) from None
        problems = _semantic_problems(rule_set, catalog, measures, positions or {})
        if problems:
            raise InvalidRuleSet(problems)
        rule_set._document = json.loads(json.dumps(data))
        return rule_set

    @classmethod
    def from_text(cls, text: str | bytes, catalog: Catalog, measures: MeasureCatalog) -> RuleSet:
        """Parse YAML (a superset of JSON) keeping positions of expressions for messages."""
        try:
            node = yaml.compose(text, Loader=_Loader)
            data = yaml.load(text, Loader=_Loader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problem = RuleProblem(
                None,
                "document",
                f"not valid YAML/JSON: {getattr(exc, 'problem', exc)}",
                file_line=mark.line + 1 if mark else None,
                file_column=mark.column + 1 if mark else None,
            )
            raise InvalidRuleSet([problem]) from None
        return cls.from_data(data, catalog, measures, positions=_expr_positions(node, text))


class _Loader(yaml.SafeLoader):
    """SafeLoader without implicit timestamps: the document must stay plain JSON data."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _expr_positions(node: Any, text: str | bytes) -> dict[tuple[int, str], tuple[int, int, str]]:
    """(rule index, field) -> (file line, file column of the expression's first char, style)."""
    found: dict[tuple[int, str], tuple[int, int, str]] = {}
    if not isinstance(node, yaml.MappingNode):
        return found
    lines = (text.decode() if isinstance(text, bytes) else text).splitlines()
    for key, value in node.value:
        if key.value != "rules" or not isinstance(value, yaml.SequenceNode):
            continue
        for index, rule in enumerate(value.value):
            if not isinstance(rule, yaml.MappingNode):
                continue
            for rkey, rvalue in rule.value:
                if rkey.value in ("condition", "exit_condition") and isinstance(
                    rvalue, yaml.ScalarNode
                ):
                    mark = rvalue.start_mark
                    style = rvalue.style or ""
                    if style in ("|", ">"):
                        first = mark.line + 1  # content starts on the next line
                        indent = 0
                        while first < len(lines) and not lines[first].strip():
                            first += 1
                        if first < len(lines):
                            indent = len(lines[first]) - len(lines[first].lstrip())
                        found[(index, rkey.value)] = (first + 1, indent + 1, style)
                    else:
                        quote = 1 if style in ("'", '"') else 0
                        found[(index, rkey.value)] = (mark.line + 1, mark.column + 1 + quote, style)
    return found


def _pydantic_problems(exc: ValidationError, data: Any) -> list[RuleProblem]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        rule_id = None
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            try:
                rule_id = str(data["rules"][loc[1]]["id"])
            except (KeyError, IndexError, TypeError):
                rule_id = f"#{loc[1]}"
        field = ".".join(str(p) for p in loc) or "document"
        problems.append(RuleProblem(rule_id, field, str(error["msg"])))
    return problems


def _semantic_problems(
    rs: RuleSet,
    catalog: Catalog,
    measures: MeasureCatalog,
    positions: dict[tuple[int, str], tuple[int, int, str]],
) -> list[RuleProblem]:
    problems: list[RuleProblem] = []
    seen_lists: set[str] = set()
    for decl in rs.lists:
        if decl.id in seen_lists or decl.id in ("red", "black"):
            problems.append(RuleProblem(None, f"lists.{decl.id}", "duplicate list id"))
        seen_lists.add(decl.id)
    codes = frozenset(c.code for c in catalog)
    seen_rules: set[str] = set()
    for index, rule in enumerate(rs.rules):

        def add(field: str, message: str, rule: Rule = rule) -> None:
            problems.append(RuleProblem(rule.id, field, message))

        if rule.id in seen_rules:
            add("id", "duplicate rule id")
        seen_rules.add(rule.id)
        for code in rule.scope:
            if code not in codes:
                add("scope", f"unknown category code {code!r}")
            elif not set(catalog.by_code(code).subject_kinds) & set(rule.subject_kinds):
                add("scope", f"category {code!r} never concerns {list(rule.subject_kinds)}")
        kinds_of_lists = set()
        for list_id in rule.outcomes:
            if list_id not in rs.list_ids:
                add("outcomes", f"unknown list {list_id!r}")
            else:
                kinds_of_lists.add(rs.list_decl(list_id).kind)
        if len(kinds_of_lists) > 1:
            add("outcomes", "a rule cannot put a subject on both red and black lists")
        for measure_id in rule.measures:
            measure = measures.get(measure_id)
            if measure is None:
                add("measures", f"unknown measure {measure_id!r}")
                continue
            wanted = "reward" if kinds_of_lists == {"red"} else "punishment"
            if kinds_of_lists and measure.kind != wanted:
                add(
                    "measures",
                    f"{measure.kind} measure {measure_id!r} on a "
                    f"{'/'.join(sorted(kinds_of_lists))} list",
                )
            target_kinds = {"entity" if t == "legal_representative" else t for t in measure.targets}
            if not target_kinds & set(rule.subject_kinds):
                add(
                    "measures", f"measure {measure_id!r} targets none of {list(rule.subject_kinds)}"
                )
        for field in ("condition", "exit_condition"):
            text = getattr(rule, field)
            for p in check_expression(text, known_codes=codes, scope=rule.scope):
                file_line = file_col = None
                if (index, field) in positions:
                    line0, col0, style = positions[(index, field)]
                    # Literal blocks keep lines; other styles map the first line only.
                    if style == "|" or (p.line == 1 and style != ">"):
                        file_line, file_col = line0 + p.line - 1, col0 + p.column - 1
                problems.append(
                    RuleProblem(rule.id, field, p.message, p.line, p.column, file_line, file_col)
                )
    return problems


def load_measures(path: Path | None = None) -> MeasureCatalog:
    """The packaged ``ledger/data/measures.json`` or a deployment's own file."""
    raw = _read(path, ("data", "measures.json"))
    try:
        return MeasureCatalog.model_validate_json(raw)
    except (ValidationError, ValueError) as exc:
        raise InvalidInput(f"invalid measures catalog: {exc}") from None


def load_rule_set(catalog: Catalog, measures: MeasureCatalog, path: Path | None = None) -> RuleSet:
    """The packaged ``ledger/data/rules/district-joint-credit.yaml``, or ``path``."""
    return RuleSet.from_text(
        _read(path, ("data", "rules", "district-joint-credit.yaml")), catalog, measures
    )


def _read(path: Path | None, parts: tuple[str, ...]) -> bytes:
    if path is None:
        return resources.files("ledger").joinpath(*parts).read_bytes()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from None
