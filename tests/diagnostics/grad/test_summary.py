"""The gradient summary on hand-made plans: norms, shares and cosines from the Gram matrix of
per-term boundary gradients, checked against numbers computed here."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from utnet_diag.config import LossWeights
from utnet_diag.diagnostics.grad.summary import GradStats, term_statistics


def plan(names: list[str], reach: dict[str, int]):
    return SimpleNamespace(
        names_active=names, terms=list(reach), active=set(names),
        reach={t: (bits, None) for t, bits in reach.items()},
        params=[0, 1, 2], param_gid=[0, 1, 1], group_names=["backbone", "head"],
    )  # fmt: skip


def test_norms_shares_and_cosines():
    g = {"loss_2d": torch.tensor([3.0, 4.0, 0.0]), "loss_3d_joint": torch.tensor([-3.0, 0.0, 4.0]),
         "loss_aux": torch.zeros(3)}  # fmt: skip
    p = plan(
        list(g), {"loss_2d": 0b011, "loss_3d_joint": 0b110, "loss_aux": 0b000, "loss_prior": 0}
    )
    rows, conflicts = term_statistics(p, SimpleNamespace(boundary_grads=g),
                                      LossWeights.from_preset("recommended"))  # fmt: skip
    by = {r["term"]: r for r in rows}
    assert by["loss_2d"]["boundary_norm"] == 5.0 and by["loss_3d_joint"]["boundary_norm"] == 5.0
    assert by["loss_aux"]["boundary_norm"] == 0.0  # a zero gradient has norm 0, not NaN
    assert by["loss_2d"]["share"] == 0.5 and by["loss_aux"]["share"] == 0.0
    assert by["loss_prior"]["boundary_norm"] is None and by["loss_prior"]["share"] is None
    assert not by["loss_prior"]["active"] and by["loss_2d"]["active"]
    assert by["loss_2d"]["reaches"] == ["backbone", "head"]
    assert by["loss_3d_joint"]["reaches"] == ["head"] and by["loss_aux"]["reaches"] == []
    assert by["loss_2d"]["weight"] == 1.0
    # (3, 4, 0) . (-3, 0, 4) = -9 over 5 * 5; a zero gradient has no direction: no pair
    assert conflicts == [{"a": "loss_2d", "b": "loss_3d_joint", "cosine": pytest.approx(-0.36)}]


def test_no_boundary_gradients_no_shares():
    p = plan(["loss_2d"], {"loss_2d": 0b001})
    rows, conflicts = term_statistics(p, SimpleNamespace(boundary_grads={}),
                                      LossWeights.from_preset("config"))  # fmt: skip
    assert rows[0]["boundary_norm"] is None and rows[0]["share"] is None and conflicts == []
    assert rows[0]["weight"] == 0.01


def test_gram_overflow_in_float32_falls_back_to_float64():
    big = {"loss_2d": torch.full((4,), 1e30), "loss_3d_joint": torch.full((4,), -1e30)}
    p = plan(list(big), {"loss_2d": 1, "loss_3d_joint": 1})
    rows, conflicts = term_statistics(p, SimpleNamespace(boundary_grads=big),
                                      LossWeights.from_preset("recommended"))  # fmt: skip
    assert math.isclose(rows[0]["boundary_norm"], 2e30, rel_tol=1e-6)
    assert conflicts[0]["cosine"] == pytest.approx(-1.0)


def test_grad_stats_lookups():
    stats = GradStats([{"name": "backbone"}, {"name": "head"}], [{"term": "loss_2d"}], [], {},
                      1.0, False, 1)  # fmt: skip
    assert stats.group("head") == {"name": "head"} and stats.group("gcn") is None
    assert stats.term("loss_2d") == {"term": "loss_2d"} and stats.term("loss_aux") is None
    sections = stats.to_sections()
    assert sections["grad_modules"]["total_grad_norm"] == 1.0
    assert sections["grad_terms"]["exact"] is False
