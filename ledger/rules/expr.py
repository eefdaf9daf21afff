"""CEL expressions of rules: static checks at publish time and compiled programs at run time.

The environment is closed: the only variables are ``records`` (list of maps, one per current
record in the rule's category scope), ``totals`` (map category code -> sum of the amounts of the
*counting* records of that category; every scope code present), ``subject_kind`` (``"person"`` or
``"entity"``) and ``as_of`` (int, unix seconds). Times are int unix seconds everywhere, the unit
the chain uses, so ``r.effective_from > as_of - 365 * 86400`` reads the same in every engine and
no time zone or timestamp conversion can differ between them. There is no clock, I/O, regex or
conversion function: only the allow-listed methods and macros below.

Invariants of a checked expression (:func:`check_expression`):

* every identifier is declared or bound by a comprehension macro; every field read from a
  record is a record field; every function/method is allow-listed;
* every dotted string literal (a category code) is in the catalog *and* in the rule's scope;
  literals compared with ``polarity``/``severity``/``subject_kind`` are valid values;
* ``records`` is used only as the target of a comprehension whose predicate reads ``.counts``
  of its variable, so a rule cannot silently count disputed, withdrawn or expired records.

Two engines evaluate the same source: ``cpp`` (``cel-expr-python``, the CEL C++ runtime, also
type-checks at compile time) when installed, else ``celpy`` (``cel-python``, pure Python, slow).
An evaluation error (a missing key, overflow) makes the program return ``None``: the caller
treats it as "not met" and reports it; it never raises.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import celpy
import celpy.celparser
from lark import Token, Tree

__all__ = [
    "DECLARED_VARIABLES",
    "ENGINES",
    "RECORD_FIELDS",
    "ExprProblem",
    "Program",
    "available_engines",
    "check_expression",
    "compile_program",
    "default_engine",
]

DECLARED_VARIABLES: Final = frozenset({"records", "totals", "subject_kind", "as_of"})
RECORD_FIELDS: Final = frozenset(
    {
        "id",
        "category",
        "polarity",
        "severity",
        "occurred_at",
        "effective_from",
        "effective_until",
        "amount",
        "disputed",
        "withdrawn",
        "objection_upheld",
        "repaired",
        "counts",
        "repairable_from",
    }
)
"""``repairable_from``: earliest repair date (unix s) for repairable categories, else 0."""
_ENUM_VALUES: Final[dict[str, frozenset[str]]] = {
    "polarity": frozenset({"good", "bad"}),
    "severity": frozenset({"minor", "general", "serious"}),
    "subject_kind": frozenset({"person", "entity"}),
}
_MACROS: Final = frozenset({"exists", "all", "exists_one", "filter", "map"})
_METHODS: Final = frozenset({"size", "contains", "startsWith", "endsWith"})
_FUNCTIONS: Final = frozenset({"size", "has", "int"})
_CODE_RE: Final = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
ENGINES: Final = ("cpp", "celpy")
INT64_MAX: Final = 2**63 - 1


@dataclass(frozen=True, slots=True)
class ExprProblem:
    """One problem in an expression; ``line``/``column`` are 1-based within the expression."""

    line: int
    column: int
    message: str


Program = Callable[[Mapping[str, Any]], "bool | None"]


def _pos(node: Tree | Token) -> tuple[int, int]:
    if isinstance(node, Token):
        return node.line or 1, node.column or 1
    meta = node.meta
    if not getattr(meta, "empty", True):
        return meta.line, meta.column
    for child in node.children:
        if isinstance(child, Tree | Token):
            return _pos(child)
    return 1, 1


def _unwrap(node: Any) -> Any:
    """Descend single-child wrappers (expr -> conditionalor -> ... -> member -> primary)."""
    while isinstance(node, Tree) and len(node.children) == 1 and isinstance(node.children[0], Tree):
        if node.data in ("list_lit", "paren_expr", "exprlist"):
            break
        node = node.children[0]
    return node


def _string_literal(node: Any) -> str | None:
    node = _unwrap(node)
    if isinstance(node, Tree) and node.data == "literal":
        tok = node.children[0]
        if isinstance(tok, Token) and tok.type == "STRING_LIT":
            text = str(tok)
            return text[2:-1] if text[:1] in "rR" else text[1:-1]
    return None


def _ident(node: Any) -> str | None:
    node = _unwrap(node)
    if isinstance(node, Tree) and node.data == "ident":
        return str(node.children[0])
    return None


class _Checker:
    def __init__(self, known_codes: frozenset[str], scope: frozenset[str], lint_counts: bool):
        self.known = known_codes
        self.scope = scope
        self.lint = lint_counts
        self.problems: list[ExprProblem] = []

    def err(self, node: Tree | Token, message: str) -> None:
        line, col = _pos(node)
        self.problems.append(ExprProblem(line, col, message))

    def walk(self, node: Any, bound: Mapping[str, bool]) -> None:
        """``bound`` maps comprehension variables to "is a record" (fields checked if so)."""
        if isinstance(node, Token):
            return
        kind = node.data
        if kind == "ident":
            name = str(node.children[0])
            if name == "records" and self.lint:
                self.err(
                    node,
                    "'records' may only be the target of a comprehension "
                    "(exists/all/exists_one/filter/map) that reads r.counts",
                )
            elif name not in bound and name not in DECLARED_VARIABLES:
                self.err(node, f"unknown identifier {name!r}")
            return
        if kind == "literal":
            tok = node.children[0]
            if isinstance(tok, Token) and tok.type in ("MLSTRING_LIT", "BYTES_LIT"):
                self.err(node, "only simple string literals are allowed in rules")
                return
            text = _string_literal(node)
            if text is not None and "\\" in text:
                self.err(node, "escape sequences are not allowed in rule string literals")
            elif text is not None and _CODE_RE.match(text):
                self.check_code(node, text)
            return
        if kind == "member_dot":
            target, field_tok = node.children
            target_name = _ident(target)
            if target_name is not None and bound.get(target_name):
                if str(field_tok) not in RECORD_FIELDS:
                    self.err(field_tok, f"unknown record field {str(field_tok)!r}")
                return
            if target_name in DECLARED_VARIABLES and target_name not in bound:
                self.err(
                    field_tok,
                    f"{target_name!r} has no field {str(field_tok)!r}"
                    + (' (use totals["code"])' if target_name == "totals" else ""),
                )
                return
            self.walk(target, bound)
            return
        if kind == "member_dot_arg":
            target, method_tok, *rest = node.children
            method = str(method_tok)
            args = list(rest[0].children) if rest and isinstance(rest[0], Tree) else []
            if method in _MACROS:
                self.macro(node, target, method_tok, args, bound)
                return
            if method not in _METHODS:
                self.err(method_tok, f"function {method!r} is not allowed in rules")
                return
            self.walk(target, bound)
            for arg in args:
                self.walk(arg, bound)
            return
        if kind == "ident_arg":
            fn_tok, *rest = node.children
            if str(fn_tok) not in _FUNCTIONS:
                self.err(fn_tok, f"function {str(fn_tok)!r} is not allowed in rules")
                return
            for arg in rest[0].children if rest and isinstance(rest[0], Tree) else []:
                self.walk(arg, bound)
            return
        if kind in ("dot_ident", "dot_ident_arg", "member_object", "map_lit"):
            self.err(node, f"construct {kind!r} is not allowed in rules")
            return
        if kind == "relation" and len(node.children) == 2:
            self.relation(node)
        for child in node.children:
            self.walk(child, bound)

    def macro(
        self, node: Tree, target: Any, method_tok: Token, args: list[Any], bound: Mapping[str, bool]
    ) -> None:
        if len(args) != 2 or _ident(args[0]) is None:
            self.err(method_tok, f"{method_tok}() needs a variable and an expression")
            return
        var = _ident(args[0])
        assert var is not None
        if var in DECLARED_VARIABLES or var in bound:
            self.err(args[0], f"comprehension variable {var!r} shadows another name")
        over_records = _ident(target) == "records" and "records" not in bound
        if not over_records:
            self.walk(target, bound)
        else:
            if self.lint and not _reads_counts(args[1], var):
                self.err(method_tok, f"{method_tok}() over records must read {var}.counts")
        is_record = over_records or _is_record_filter(target)
        self.walk(args[1], {**bound, var: is_record})

    def relation(self, node: Tree) -> None:
        """Check literals compared with an enum-valued field (``r.polarity == "bad"``)."""
        op, rhs = node.children
        if not isinstance(op, Tree) or op.data not in ("relation_eq", "relation_ne", "relation_in"):
            return
        lhs = op.children[0]
        for field_side, value_side in ((lhs, rhs), (rhs, lhs)):
            field_name = _field_name(field_side)
            if field_name not in _ENUM_VALUES:
                continue
            for value_node in _literal_values(value_side):
                text = _string_literal(value_node)
                if text is not None and text not in _ENUM_VALUES[field_name]:
                    self.err(
                        value_node,
                        f"{text!r} is not a valid {field_name} "
                        f"(one of {sorted(_ENUM_VALUES[field_name])})",
                    )

    def check_code(self, node: Tree, code: str) -> None:
        if code not in self.known:
            self.err(node, f"unknown category code {code!r}")
        elif code not in self.scope:
            self.err(node, f"category {code!r} is not in the rule's scope")


def _field_name(node: Any) -> str | None:
    node = _unwrap(node)
    if isinstance(node, Tree) and node.data == "member_dot":
        return str(node.children[1])
    if isinstance(node, Tree) and node.data == "ident":
        return str(node.children[0])
    return None


def _literal_values(node: Any) -> Iterable[Any]:
    node = _unwrap(node)
    if isinstance(node, Tree) and node.data == "list_lit":
        if node.children and isinstance(node.children[0], Tree):
            yield from node.children[0].children
        return
    yield node


def _reads_counts(node: Any, var: str) -> bool:
    if not isinstance(node, Tree):
        return False
    if node.data == "member_dot" and _ident(node.children[0]) == var:
        return str(node.children[1]) == "counts"
    return any(_reads_counts(c, var) for c in node.children)


def _is_record_filter(node: Any) -> bool:
    node = _unwrap(node)
    if (
        isinstance(node, Tree)
        and node.data == "member_dot_arg"
        and str(node.children[1]) == "filter"
    ):
        inner = node.children[0]
        return _ident(inner) == "records" or _is_record_filter(inner)
    return False


_PARSER_ENV: celpy.Environment | None = None


def _parse(text: str) -> Tree:
    global _PARSER_ENV
    if _PARSER_ENV is None:
        _PARSER_ENV = celpy.Environment()
    return _PARSER_ENV.compile(text)


def check_expression(
    text: str, *, known_codes: Iterable[str], scope: Iterable[str], lint_counts: bool = True
) -> list[ExprProblem]:
    """Every problem in ``text`` with its position; empty when the expression is acceptable.

    Parses with cel-python (positions from its grammar), walks the tree for the closed
    environment's rules, and, when the C++ engine is present, also runs its type checker.
    """
    try:
        tree = _parse(text)
    except celpy.celparser.CELParseError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "syntax error"
        return [ExprProblem(exc.line or 1, exc.column or 1, f"syntax error near {first!r}")]
    checker = _Checker(frozenset(known_codes), frozenset(scope), lint_counts)
    checker.walk(tree, {})
    problems = checker.problems
    if not problems and "cpp" in available_engines():
        problems = _cpp_check(text)
    return sorted(problems, key=lambda p: (p.line, p.column, p.message))


# ---- engines ---------------------------------------------------------------------------------

_CPP_ENV: Any = None
_CPP_ERR_RE: Final = re.compile(r"ERROR: <input>:(\d+):(\d+): ([^\n]*)")


def _cpp_env() -> Any:
    global _CPP_ENV
    if _CPP_ENV is None:
        from cel_expr_python import cel as ccel

        t = ccel.Type
        _CPP_ENV = ccel.NewEnv(
            variables={
                "records": t.List(t.Map(t.STRING, t.DYN)),
                "totals": t.Map(t.STRING, t.INT),
                "subject_kind": t.STRING,
                "as_of": t.INT,
            }
        )
    return _CPP_ENV


def _cpp_check(text: str) -> list[ExprProblem]:
    try:
        expression = _cpp_env().compile(text)
    except RuntimeError as exc:
        found = [
            ExprProblem(int(m.group(1)), int(m.group(2)), m.group(3).strip())
            for m in _CPP_ERR_RE.finditer(str(exc))
        ]
        return found or [ExprProblem(1, 1, str(exc).strip())]
    if expression.return_type().name() not in ("bool", "BOOL", "dyn"):
        return [ExprProblem(1, 1, f"expression must be bool, is {expression.return_type().name()}")]
    return []


_AVAILABLE: tuple[str, ...] | None = None


def available_engines() -> tuple[str, ...]:
    """Engines importable here, fastest first."""
    global _AVAILABLE
    if _AVAILABLE is None:
        found = []
        try:
            import cel_expr_python.cel  # noqa: F401

            found.append("cpp")
        except ImportError:
            pass
        found.append("celpy")
        _AVAILABLE = tuple(found)
    return _AVAILABLE


def default_engine() -> str:
    return available_engines()[0]


def compile_program(text: str, engine: str | None = None) -> Program:
    """Compile once; the returned callable maps an activation to True/False, or None on error.

    The activation holds plain Python values (ints, strs, bools, lists, dicts).
    """
    engine = engine or default_engine()
    if engine == "cpp":
        expression = _cpp_env().compile(text)
        from cel_expr_python import cel as ccel

        error_type = ccel.Type.ERROR

        def run_cpp(activation: Mapping[str, Any]) -> bool | None:
            value = expression.eval(data=activation)
            if value.type() == error_type:
                return None
            result = value.value()
            return result if isinstance(result, bool) else None

        return run_cpp
    if engine == "celpy":
        env = celpy.Environment()
        program = env.program(env.compile(text))
        from celpy.adapter import json_to_cel

        def run_celpy(activation: Mapping[str, Any]) -> bool | None:
            try:
                result = program.evaluate({k: json_to_cel(v) for k, v in activation.items()})
            except celpy.CELEvalError:
                return None
            if isinstance(result, celpy.celtypes.BoolType):
                return bool(result)
            return None

        return run_celpy
    raise ValueError(f"unknown CEL engine {engine!r}; available: {available_engines()}")
