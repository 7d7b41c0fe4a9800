"""Loss-weight advisor: shares and recommended weights checked against hand computation."""

from __future__ import annotations

import pytest

from utnet_diag.config import LossWeights
from utnet_diag.diagnostics.advisor import (
    advice_from_term_rows,
    advise_weights,
    parse_target_shares,
)
from utnet_diag.errors import InputError

CONFIG = LossWeights.from_preset("config")  # w_2d 0.01, w_3d_joint 0.05, w_prior 0.001


def test_equal_shares_by_hand() -> None:
    # c_2d = 1, c_3d = 3 -> shares 0.25 / 0.75. Equal targets: w_2d x2, w_3d x2/3 (k = 1, since
    # 1*2 + 3*(2/3) = 4 = 1 + 3: the summed gradient is kept).
    advice = advise_weights({"loss_2d": 1.0, "loss_3d_joint": 3.0}, CONFIG)
    two, three = advice.row("loss_2d"), advice.row("loss_3d_joint")
    assert two["share"] == pytest.approx(0.25) and three["share"] == pytest.approx(0.75)
    assert two["target_share"] == 0.5 and three["target_share"] == 0.5
    assert two["recommended"] == pytest.approx(0.02)
    assert three["recommended"] == pytest.approx(0.05 * 2 / 3)
    # keeping w_3d_joint at 0.05 scales both by 1.5
    assert three["same_3d_weight"] == pytest.approx(0.05)
    assert two["same_3d_weight"] == pytest.approx(0.03)
    # with the recommended weights the contributions are equal and sum to the old 4
    g2, g3 = 1.0 / 0.01, 3.0 / 0.05  # unweighted gradient norms
    assert two["recommended"] * g2 == pytest.approx(2.0)
    assert three["recommended"] * g3 == pytest.approx(2.0)
    assert two["recommended_range"] == [1.0, 1.0] and two["weight_in_range"] is False
    assert advice.explanation is None  # 75% is not dominant


def test_untargeted_terms_keep_weights_and_targets_are_normalised() -> None:
    # prior takes half the gradient; the 2D/3D targets 1:3 are normalised to 0.25/0.75
    advice = advise_weights(
        {"loss_2d": 1.0, "loss_3d_joint": 3.0, "loss_prior": 4.0},
        CONFIG,
        {"loss_2d": 1.0, "loss_3d_joint": 3.0},
    )
    assert advice.row("loss_prior")["share"] == pytest.approx(0.5)
    assert advice.row("loss_prior")["recommended"] is None
    assert advice.row("loss_prior")["weight_in_range"] is True  # 0.001 in [0.001, 0.01]
    assert advice.target_shares == {"loss_2d": 0.25, "loss_3d_joint": 0.75}
    # 2D already has 1/4 of the 2D+3D gradient: the weights are what they are
    assert advice.row("loss_2d")["recommended"] == pytest.approx(0.01)
    assert advice.row("loss_3d_joint")["recommended"] == pytest.approx(0.05)


def test_mm_dominance_is_explained_in_one_line() -> None:
    advice = advise_weights(
        {"loss_2d": 0.0045, "loss_3d_joint": 0.85},
        CONFIG,
        per_element={"loss_2d": 0.056, "loss_3d_joint": 13.0},
    )
    assert advice.row("loss_3d_joint")["share"] == pytest.approx(0.85 / 0.8545)
    text = advice.explanation
    assert text is not None and "\n" not in text
    assert text.startswith("the 3D joint loss gives 99% of the gradient at the trunk")
    assert "millimetres" in text and "13 mm vs 0.056 crop units per coordinate, 232x" in text
    # asking for 3D to dominate is no reason to explain
    asked = advise_weights({"loss_2d": 0.0045, "loss_3d_joint": 0.85}, CONFIG,
                           {"loss_2d": 0.0, "loss_3d_joint": 1.0})  # fmt: skip
    assert asked.explanation is None


def test_zero_weight_target_is_a_note_not_a_number() -> None:
    advice = advise_weights(
        {"loss_2d": 1.0, "loss_3d_joint": 1.0, "loss_3d_vert": 0.0},
        CONFIG,
        {"loss_2d": 1.0, "loss_3d_joint": 1.0, "loss_3d_vert": 1.0},
    )
    assert advice.row("loss_3d_vert")["recommended"] is None
    assert any(n.startswith("3D vertex loss: its gradient at the trunk is 0") for n in advice.notes)
    # the others still get theirs, normalised among themselves (1/3 each asked, 1/2 each now)
    assert advice.row("loss_2d")["recommended"] == pytest.approx(0.01)


def test_from_grad_flow_rows_and_missing_boundary() -> None:
    rows = [
        {"term": "loss_2d", "boundary_norm": 1.0},
        {"term": "loss_3d_joint", "boundary_norm": 3.0},
        {"term": "loss_aux", "boundary_norm": None},
    ]
    advice = advice_from_term_rows(rows, CONFIG)
    assert advice is not None and advice.row("loss_aux") is None
    assert advice.row("loss_2d")["recommended"] == pytest.approx(0.02)
    assert advice_from_term_rows([{"term": "loss_2d", "boundary_norm": None}], CONFIG) is None


def test_a_computed_term_without_gradient_at_the_trunk_is_not_called_uncomputed() -> None:
    rows = [
        {"term": "loss_2d", "boundary_norm": 1.0},
        {"term": "loss_3d_joint", "boundary_norm": None},  # computed: its row exists
    ]
    advice = advice_from_term_rows(rows, CONFIG)
    assert advice.notes == [
        "3D joint loss: computed, but its gradient does not reach the trunk (nothing it depends"
        " on is computed from the trunk's features: see grad_reach)"
    ]
    only_2d = advise_weights({"loss_2d": 1.0}, CONFIG)  # the 3D term was never computed
    assert only_2d.notes == [
        "3D joint loss: no gradient at the trunk was measured (term not computed)"
    ]


def test_parse_target_shares() -> None:
    assert parse_target_shares(None) == {"loss_2d": 0.5, "loss_3d_joint": 0.5}
    assert parse_target_shares("2d=0.3, 3d=0.6,aux=0.1") == {
        "loss_2d": 0.3, "loss_3d_joint": 0.6, "loss_aux": 0.1}  # fmt: skip
    assert parse_target_shares("loss_3d_vert=1") == {"loss_3d_vert": 1.0}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2d0.5", "entry '2d0.5' has no '='"),
        ("2d=0.5,,3d=0.5", "empty entry"),
        ("2dd=0.5", "unknown term '2dd'; did you mean '2d'?"),
        ("2d=half", "'half' for 2d is not a number"),
        ("2d=-1", "2d=-1 must be >= 0"),
        ("2d=nan", "2d=nan must be >= 0"),
        ("2d=0,3d=0", "all 0"),
        ("3d=0.5,3d_joint=0.5", "names 3D joint loss twice"),
    ],
)
def test_parse_target_shares_errors(text: str, message: str) -> None:
    with pytest.raises(InputError, match=None) as info:
        parse_target_shares(text)
    assert message in str(info.value)


@pytest.mark.slow
def test_advised_weights_give_the_target_shares_on_the_embedded_default() -> None:
    """Run the advice on the embedded default, then grad-flow's shares under the advised weights:
    they come out as asked (the contributions are linear in the weights)."""
    import dataclasses

    from utnet_diag.diagnostics.advisor import advice_for_forward
    from utnet_diag.diagnostics.grad import compute_grad_stats
    from utnet_diag.diagnostics.runner import forward_pass, load_inputs, training_step

    inputs = load_inputs()  # embedded default, config preset
    targets = {"loss_2d": 0.3, "loss_3d_joint": 0.7}
    with training_step(inputs.model):
        section = advice_for_forward(forward_pass(inputs), targets)
    rows = {r["term"]: r for r in section["rows"]}
    assert rows["loss_3d_joint"]["share"] > 0.99  # mm units at w_3d_joint 0.05 vs w_2d 0.01
    assert section["explanation"].startswith("the 3D joint loss gives 99%")
    advised = dataclasses.replace(
        inputs.config.weights,
        w_2d=rows["loss_2d"]["recommended"],
        w_3d_joint=rows["loss_3d_joint"]["recommended"],
    )
    inputs.config = dataclasses.replace(inputs.config, weights=advised)
    with training_step(inputs.model):
        stats = compute_grad_stats(forward_pass(inputs))
    norms = {t["term"]: t["boundary_norm"] for t in stats.terms}
    pair = norms["loss_2d"] + norms["loss_3d_joint"]
    assert norms["loss_2d"] / pair == pytest.approx(0.3, rel=1e-4)
    before = rows["loss_2d"]["contribution"] + rows["loss_3d_joint"]["contribution"]
    assert pair == pytest.approx(before, rel=1e-4)  # the summed gradient kept its size


def test_section_without_boundary_says_so() -> None:
    from utnet_diag.diagnostics.advisor import weight_advice_section

    section = weight_advice_section([{"term": "loss_2d", "boundary_norm": None}], CONFIG)
    assert section["unavailable"].startswith("no per-term gradient at the trunk/heads boundary")
