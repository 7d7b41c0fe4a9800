"""One id scheme over every family, the old ids as aliases, and ``utnet-diag checks``."""

from __future__ import annotations

import json
import re

import pytest

import utnet_diag
from utnet_diag.catalog import ID_ALIASES, catalog, lookup, registries
from utnet_diag.cli.app import main
from utnet_diag.errors import InputError

ID = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
# rules two families apply, under one id (utnet_diag.measures holds their shared measure)
SHARED = {"finite": {"batch", "dataset"}, "kp3d_units": {"batch", "dataset"}}


def test_every_id_fits_the_scheme_and_names_one_rule():
    seen: dict[str, set[str]] = {}
    for registry in registries():
        ids = registry.ids()
        assert len(ids) == len(set(ids)), registry.family
        for check_id in ids:
            assert ID.match(check_id), check_id
            seen.setdefault(check_id, set()).add(registry.family)
    shared = {k: v for k, v in seen.items() if len(v) > 1}
    assert shared == SHARED


def test_every_check_says_what_it_checks_and_what_to_do():
    for entry in catalog():
        assert entry.description and entry.description != entry.id, entry.id
        assert "\n" not in entry.description and not entry.description.endswith("."), entry.id
    no_hint = [e.id for e in catalog() if not e.hint]
    # its hint depends on what the model's code asked smplx for: every outcome brings its own
    assert no_hint == ["pred_degenerate"]


def test_old_ids_are_aliases():
    for old, new in ID_ALIASES.items():
        assert not ID.match(old) and lookup(old).id == new and old in lookup(new).aliases
    assert lookup("compare_regression:mpjpe").id == "compare_regression"
    with pytest.raises(InputError, match="did you mean 'grad_dead'"):
        lookup("grad_ded")


@pytest.mark.slow
def test_the_gates_results_are_all_in_the_catalog():
    known = {e.id for e in catalog()}
    report = utnet_diag.gate()
    assert {c.id for c in report.checks} <= known


def test_cli_lists_explains_and_refuses(capsys):
    assert main(["checks", "--family", "grad", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [e["id"] for e in listed] == ["grad_finite", "grad_dead", "grad_vanishing",
                                         "grad_exploding", "grad_reach", "grad_balance"]  # fmt: skip
    assert main(["checks", "mano.rest_size"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("mano_rest_size  (mano)") and "formerly: mano.rest_size" in out
    assert main(["checks", "grad_dead"]) == 0
    assert "requires: grad_finite" in capsys.readouterr().out
    for argv, text in ((["checks", "nope"], "no check 'nope'"),
                       (["checks", "--family", "gradd"], "did you mean 'grad'")):  # fmt: skip
        assert main(argv) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and text in captured.err and captured.err.count("\n") == 1


def test_every_check_lists_its_default_threshold_with_the_specs_numbers():
    from utnet_diag.catalog import catalog

    entries = {e.id: e for e in catalog()}
    assert all(e.threshold for e in entries.values()), [i for i, e in entries.items()
                                                        if not e.threshold]  # fmt: skip
    # spec 9.2-9.4: L_2D < 500 (alarm 10000), L_3D_joint < 80000, prior < 100 (alarm 5000)
    assert entries["loss_2d"].threshold.startswith("healthy < 500, alarm >= 10000")
    assert entries["log_loss_3d_joint"].threshold.startswith("healthy < 80000")
    assert entries["loss_prior"].threshold.startswith("healthy < 100, alarm >= 5000")
    assert entries["kp2d_range"].threshold == "|x|, |y| <= 0.5 (crop units)"  # spec 1.3
    assert entries["kp3d_units"].threshold == "hand span 50-400 mm"


def test_checks_prints_the_threshold_column_and_json(capsys):
    from utnet_diag.cli.app import main

    assert main(["checks", "--family", "loss", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {d["id"]: d["threshold"] for d in data}["loss_aux"].startswith("healthy < 1 ")
    assert main(["checks", "grad_exploding"]) == 0
    assert "default threshold: gradient norm < 1e+06 (fail at 1e+09)" in capsys.readouterr().out
