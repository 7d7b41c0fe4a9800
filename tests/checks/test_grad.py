"""The gradient checks on hand-built statistics: each limit is probed just inside and just outside,
with numbers written here, not taken from a model run."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest

from utnet_diag.checks import grad as G
from utnet_diag.checks.engine import CheckContext, run_checks
from utnet_diag.diagnostics.grad import GradStats
from utnet_diag.report.result import Status


def group(name: str, grad_norm: float, param_norm: float = 1.0, **kw: Any) -> dict[str, Any]:
    row = {
        "name": name,
        "role": kw.pop("role", "trunk" if name == "backbone" else "head"),
        "tensors": 1,
        "trainable": kw.pop("trainable", 10),
        "grad_norm": grad_norm,
        "param_norm": param_norm,
        "ratio": grad_norm / param_norm if param_norm > 0 and math.isfinite(grad_norm) else None,
        "no_grad_share": 0.0,
        "dead": [],
        "nonfinite": 0,
    }
    row.update(kw)
    return row


def term(name: str, boundary_norm: float | None = 1.0, reaches=("backbone", "head"), **kw: Any):
    return {"term": name, "weight": 1.0, "active": kw.pop("active", True),
            "reaches": list(reaches), "boundary_norm": boundary_norm, "share": None, **kw}  # fmt: skip


def stats(groups, terms=(), conflicts=(), refine=(), **boundary: Any) -> GradStats:
    total = math.sqrt(sum(g["grad_norm"] ** 2 for g in groups))
    return GradStats(list(groups), list(terms), list(conflicts),
                     {"description": "backbone output", **boundary}, total, False, 1,
                     list(refine))  # fmt: skip


def run(check_id: str, s: GradStats, config: Any = None, nan_origin: Any = None):
    ctx = CheckContext(config=config, extras={"grad": s, "nan_origin": nan_origin})
    (result,) = run_checks([x for x in G.GRAD_CHECKS.specs if x.id == check_id], ctx)
    return result


# --- grad_finite ------------------------------------------------------------------------------


def test_finite_passes_and_a_nan_group_fails_with_its_count():
    assert run("grad_finite", stats([group("backbone", 1.0)])).status is Status.PASS
    bad = stats([group("backbone", 1.0), group("head", math.nan, nonfinite=7)])
    result = run("grad_finite", bad)
    assert result.status is Status.FAIL and result.value == ["head"]
    assert "head (7 values)" in result.message and "origin not found" in result.message
    origin = SimpleNamespace(message="first NaN in head.fc", to_dict=lambda: {"op": "fc"})
    result = run("grad_finite", bad, nan_origin=origin)
    assert "first NaN in head.fc" in result.message
    assert result.details["nan_origin"] == {"op": "fc"}


def test_an_infinite_total_norm_alone_fails():
    s = stats([group("backbone", 1.0)])
    s.total_grad_norm = math.inf
    assert run("grad_finite", s).status is Status.FAIL


# --- grad_dead --------------------------------------------------------------------------------


def test_dead_group_fails_partly_dead_warns_and_frozen_groups_do_not_count():
    alive = [group("backbone", 1.0), group("head", 1.0)]
    result = run("grad_dead", stats(alive))
    assert result.status is Status.PASS and "all 2 trainable" in result.message
    whole = group("gcn", 0.0, no_grad_share=1.0, dead=["gcn.w", "gcn.b"])
    result = run("grad_dead", stats([*alive, whole]))
    assert result.status is Status.FAIL and result.value == ["gcn"]
    assert result.message.startswith("1/3 trainable module groups")
    # 99.9% without gradient is not the whole group: a warning naming the dead tensor
    part = group("gcn", 1.0, no_grad_share=0.999, dead=["gcn.b"])
    result = run("grad_dead", stats([*alive, part]))
    assert result.status is Status.WARN and result.value == ["gcn.b"]
    frozen = group("stem", 0.0, trainable=0, no_grad_share=None)
    assert run("grad_dead", stats([*alive, frozen])).message.startswith("all 2 trainable")


def test_dead_list_is_cut_after_five_names():
    dead = [f"head.w{i}" for i in range(6)]
    result = run("grad_dead", stats([group("backbone", 1.0), group("head", 1.0, dead=dead)]))
    assert result.status is Status.WARN and result.message.startswith("6 parameter tensors")
    assert "head.w4" in result.message and "head.w5" not in result.message
    assert result.message.endswith(" …")
    five = run("grad_dead", stats([group("backbone", 1.0), group("head", 1.0, dead=dead[:5])]))
    assert not five.message.endswith(" …")


def test_dead_is_skipped_when_gradients_are_not_finite():
    s = stats([group("backbone", math.nan, nonfinite=1), group("head", 0.0, no_grad_share=1.0)])
    (finite, dead) = run_checks(
        [x for x in G.GRAD_CHECKS.specs if x.id in ("grad_finite", "grad_dead")],
        CheckContext(extras={"grad": s, "nan_origin": None}),
    )
    assert finite.status is Status.FAIL and dead.status is Status.SKIP
    assert dead.message == "requires grad_finite"


# --- grad_vanishing ---------------------------------------------------------------------------


def test_vanishing_limit_is_relative_to_the_median_ratio():
    # ratios 1, 1, 1 and r: the median of four sorted is the third (index 4 // 2), 1.0
    def with_ratio(r: float):
        return run("grad_vanishing", stats([group("backbone", 1.0), group("a", 1.0),
                                            group("b", 1.0), group("head", r)]))  # fmt: skip

    below = with_ratio(0.99e-4)
    assert below.status is Status.WARN and below.value == {"head": pytest.approx(0.99e-4)}
    assert below.threshold == pytest.approx(1e-4)
    assert with_ratio(1.01e-4).status is Status.PASS
    assert with_ratio(1e-4).status is Status.PASS  # at the limit exactly: not below it
    # a zero gradient is grad_dead's, not vanishing
    assert with_ratio(0.0).status is Status.PASS


def test_vanishing_median_of_an_odd_count_is_the_middle_value():
    # ratios 1e-5, 1, 100: median 1 -> limit 1e-4 -> 1e-5 is below
    s = stats([group("backbone", 1.0), group("a", 100.0), group("head", 1e-5)])
    result = run("grad_vanishing", s)
    assert result.status is Status.WARN and result.threshold == pytest.approx(1e-4)
    # ratios 1e-3, 1, 100, 100: the median is 100 (index 2), limit 1e-2: 1e-3 is below it,
    # though it is 1e-3 of the second smallest
    s = stats([group("backbone", 1.0), group("a", 100.0), group("b", 100.0), group("head", 1e-3)])
    assert run("grad_vanishing", s).threshold == pytest.approx(1e-2)


def test_every_gradient_zero_fails_and_no_trainable_group_skips():
    zero = stats([group("backbone", 0.0), group("head", 0.0)])
    result = run("grad_vanishing", zero)
    assert result.status is Status.FAIL and result.value == 0.0
    none = stats([group("backbone", 0.0, param_norm=0.0)])
    assert run("grad_vanishing", none).status is Status.SKIP


def test_vanishing_pass_names_the_smallest_positive_ratio():
    s = stats([group("backbone", 2.0), group("head", 0.5), group("gcn", 0.0)])
    result = run("grad_vanishing", s)
    assert result.status is Status.PASS and result.value == 0.5 and "(head)" in result.message


# --- grad_exploding ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("norm", "status"),
    [(0.99e6, Status.PASS), (1e6, Status.PASS), (1.01e6, Status.WARN), (1e9, Status.WARN),
     (1.01e9, Status.FAIL)],
)  # fmt: skip
def test_exploding_limits(norm: float, status: Status):
    result = run("grad_exploding", stats([group("backbone", 1.0), group("head", norm, 1e12)]))
    assert result.status is status and result.value == norm
    assert result.threshold == (1e9 if status is Status.FAIL else 1e6)


def test_exploding_skips_without_trainable_groups():
    assert run("grad_exploding", stats([])).status is Status.SKIP


# --- grad_reach -------------------------------------------------------------------------------


def test_reach_fails_for_a_term_that_misses_the_backbone_or_the_refinement():
    groups = [group("backbone", 1.0), group("head", 1.0), group("gcn", 1.0)]
    ok = [term("loss_2d", reaches=("backbone", "gcn")), term("loss_aux", reaches=("backbone",))]
    result = run("grad_reach", stats(groups, ok, refine=["gcn"]))
    assert result.status is Status.PASS and "2D and 3D reach the refinement" in result.message
    cut = [term("loss_2d", reaches=("head", "gcn")), term("loss_3d_joint", reaches=("backbone",))]
    result = run("grad_reach", stats(groups, cut, refine=["gcn"]))
    assert result.status is Status.FAIL
    assert "loss_2d does not reach the backbone" in result.message
    assert "loss_3d_joint does not reach the refinement" in result.message
    # the aux term need not reach the refinement
    aux = [term("loss_aux", reaches=("backbone",))]
    assert run("grad_reach", stats(groups, aux, refine=["gcn"])).status is Status.PASS
    nothing = [term("loss_prior", reaches=())]
    assert "loss_prior reaches no parameter" in run("grad_reach", stats(groups, nothing)).message


def test_reach_ignores_inactive_terms_and_frozen_modules():
    groups = [group("backbone", 1.0), group("head", 1.0), group("gcn", 0.0, trainable=0)]
    terms = [term("loss_2d", reaches=("backbone",)), term("loss_vert", reaches=(), active=False)]
    result = run("grad_reach", stats(groups, terms, refine=["gcn"]))
    assert result.status is Status.PASS and "refinement reach not checked" in result.message
    none = [term("loss_2d", active=False)]
    assert run("grad_reach", stats(groups, none)).status is Status.SKIP
    frozen_trunk = [group("backbone", 0.0, trainable=0), group("head", 1.0)]
    result = run("grad_reach", stats(frozen_trunk, [term("loss_2d", reaches=("head",))]))
    assert result.status is Status.PASS and "backbone reach not checked" in result.message


# --- grad_balance -----------------------------------------------------------------------------


def _balance(norms: dict[str, float | None], conflicts=()):
    groups = [group("backbone", 1.0), group("head", 1.0)]
    return run("grad_balance", stats(groups, [term(k, v) for k, v in norms.items()], conflicts))


def test_balance_warns_at_a_hundredfold_gap_between_l1_terms():
    assert _balance({"loss_2d": 1.0, "loss_3d_joint": 99.0}).status is Status.PASS
    assert _balance({"loss_2d": 1.0, "loss_3d_joint": 100.0}).status is Status.PASS
    result = _balance({"loss_2d": 1.0, "loss_3d_joint": 101.0})
    assert result.status is Status.WARN and result.threshold == 100.0
    assert result.message.startswith("loss_3d_joint drowns loss_2d (101x smaller)")
    zero = _balance({"loss_2d": 0.0, "loss_3d_joint": 5.0})
    assert zero.status is Status.WARN and "loss_2d (zero)" in zero.message


def test_balance_leaves_aux_and_prior_out():
    result = _balance({"loss_2d": 1.0, "loss_aux": 1e-9, "loss_prior": 1e-6})
    assert result.status is Status.PASS and "fewer than two L1 supervision terms" in result.message
    result = _balance({"loss_2d": 1.0, "loss_3d_joint": 2.0, "loss_aux": 1e-9})
    assert result.status is Status.PASS and "loss_aux not compared" in result.message
    assert result.details["compared"] == ["loss_2d", "loss_3d_joint"]
    assert "(loss_2d 2x below loss_3d_joint)" in result.message


def test_balance_names_conflicts_below_minus_one_half():
    conflicts = [{"a": "loss_2d", "b": "loss_3d_joint", "cosine": -0.51},
                 {"a": "loss_2d", "b": "loss_aux", "cosine": -0.5}]  # fmt: skip
    result = _balance({"loss_2d": 1.0, "loss_3d_joint": 2.0}, conflicts)
    assert "conflicts: loss_2d vs loss_3d_joint cosine -0.51" in result.message
    assert "loss_aux cosine" not in result.message
    positive = [{"a": "loss_2d", "b": "loss_3d_joint", "cosine": 0.9}]
    assert "conflicts" not in _balance({"loss_2d": 1.0, "loss_3d_joint": 2.0}, positive).message


def test_balance_skips_without_boundary_gradients_and_says_why():
    groups = [group("backbone", 1.0)]
    s = stats(groups, [term("loss_2d", None)], unavailable="the trunk output is not a tensor")
    result = run("grad_balance", s)
    assert result.status is Status.SKIP and "the trunk output is not a tensor" in result.message
