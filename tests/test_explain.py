"""utnet-diag explain: the check's text and its live result on a planted fault."""

from __future__ import annotations

import json

import pytest

from utnet_diag.catalog import catalog
from utnet_diag.cli.app import main
from utnet_diag.explain import EXAMPLES, explain
from utnet_diag.report.result import Status


@pytest.mark.parametrize("check_id", sorted(EXAMPLES))
def test_every_example_trips_its_own_check(check_id):
    explanation = explain(check_id)
    assert explanation.example is not None and explanation.example.id == check_id
    assert explanation.example.status is Status.FAIL, explanation.example.message


def test_examples_name_what_was_planted_in_the_message():
    assert "metres" in explain("kp3d_units").example.message
    assert "index 9" in explain("root_index").example.message
    assert (
        "sample 2: +90 deg, sample 5: +90 deg" in explain("kp2d_kp3d_consistency").example.message
    )


def test_checks_without_an_example_say_what_they_read():
    every = {e.id for e in catalog()}
    assert set(EXAMPLES) <= every
    grad = explain("grad_dead")
    assert grad.example is None and grad.reads == "one backward pass (grad-flow, gate)"
    assert explain("mano.plain_arrays").entry.id == "mano_plain_arrays"  # old ids too
    for check_id in every:  # every check explains itself without raising
        assert explain(check_id).doc


def test_cli_text_json_and_an_unknown_id(capsys):
    assert main(["explain", "coord_frame"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("coord_frame  (convention)\n")
    assert "example: 3D in OpenGL axes" in out and "FAIL 8/8 samples lie behind the camera" in out
    assert main(["explain", "coord_frame", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["id"] == "coord_frame" and data["example"]["result"]["status"] == "fail"
    assert main(["explain", "grad_dead", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["example"] is None
    assert main(["explain", "coord_fram"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did you mean 'coord_frame'?" in err[0]


def test_every_family_says_what_its_checks_read():
    from utnet_diag.catalog import catalog
    from utnet_diag.explain import READS

    families = {f for entry in catalog() for f in entry.families}
    assert families <= set(READS), sorted(families - set(READS))
