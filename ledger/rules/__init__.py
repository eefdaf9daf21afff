"""Joint reward and punishment rules: rule sets as data, CEL conditions, evaluation.

See :mod:`ledger.rules.model` (documents, validation), :mod:`ledger.rules.expr` (the closed CEL
environment and engines) and :mod:`ledger.rules.evaluate` (full and incremental evaluation).
Everything here is pure: ``as_of`` is always a parameter.
"""

from ledger.rules.evaluate import (
    Evaluation,
    Evaluator,
    ListChange,
    Membership,
    SubjectResult,
    evaluate,
    evaluate_subject,
    record_view,
)
from ledger.rules.expr import available_engines, check_expression, compile_program
from ledger.rules.model import (
    BUILTIN_LISTS,
    InvalidRuleSet,
    ListDecl,
    Measure,
    MeasureCatalog,
    Rule,
    RuleProblem,
    RuleSet,
    load_measures,
    load_rule_set,
)

__all__ = [
    "BUILTIN_LISTS",
    "Evaluation",
    "Evaluator",
    "InvalidRuleSet",
    "ListChange",
    "ListDecl",
    "Measure",
    "MeasureCatalog",
    "Membership",
    "Rule",
    "RuleProblem",
    "RuleSet",
    "SubjectResult",
    "available_engines",
    "check_expression",
    "compile_program",
    "evaluate",
    "evaluate_subject",
    "load_measures",
    "load_rule_set",
    "record_view",
]
