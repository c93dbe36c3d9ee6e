"""Generated regression tests: the text of a pytest test that reproduces one case against the oracle, and
the data seed of a case's twin.  Pure functions of a target and a case, used by the judge (a result's
annotated tests) and the renderers (which regenerate the text from case fields rather than trust it)."""

from __future__ import annotations

import json

from harness.core.target import Case, Target

REPRODUCER_IMPORTS = "from harness.core.target import Case\nfrom harness.judge.verify import check_case\n\n\n"
REPEAT_SEED_OFFSET = 7919  # a twin's data seed: same shape, different values


def regression_test(target: Target, case: Case, spec: str, policy: str, spec_expr: str | None = None,
                    policy_expr: str | None = None) -> str:
    """A ready-to-paste pytest test that reproduces one case against the oracle (``spec_expr`` and
    ``policy_expr``: code to use instead of the literal spec and policy, e.g. a module constant).  Case
    names and params may come from a result file: they enter the code only as ``repr`` literals, in a
    one-line comment, or reduced to an identifier."""
    from harness.core.fmt import py_comment

    name = "".join(c if c.isascii() and c.isalnum() else "_" for c in case.name).strip("_")[:80] or "case"
    json.dumps(dict(case.params), allow_nan=False)  # ValueError for inf/NaN, which have no Python literal
    return (
        f"def test_{target.name}_{name}():\n"
        f"    # {py_comment(target.describe(case))}\n"
        f"    case = Case({case.name!r}, {case.family!r}, {dict(sorted(case.params.items()))!r}, seed={int(case.seed)})\n"
        f"    check_case({target.name!r}, {spec_expr or repr(spec)}, case, policy={policy_expr or repr(policy)})\n"
    )
