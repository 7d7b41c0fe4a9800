"""mano_consistency in gate/check-batch uses the MANO the labels were made with (--mano), never the
embedded synthetic hand against a user's labels."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

import utnet_diag
from utnet_diag.cli.app import main
from utnet_diag.mano import ManoLayer, load_mano_data
from utnet_diag.report.result import Status


@pytest.fixture(scope="module")
def other_hand(tmp_path_factory):
    """A batch labelled with a MANO model that is not the embedded one (as real MANO is not)."""
    from utnet_diag.synthetic.sample import make_sample_batch

    folder = tmp_path_factory.mktemp("other_mano")
    data = {k: (v if isinstance(v, str) else np.asarray(v)) for k, v in load_mano_data().items()}
    data["v_template"] = data["v_template"] * np.array([1.12, 0.95, 1.05])
    data["shapedirs"] = data["shapedirs"] * 1.3
    mano_path = folder / "MANO_RIGHT.pkl"
    mano_path.write_bytes(pickle.dumps(data))
    batch = make_sample_batch(4, seed=3, mano=ManoLayer(path=mano_path))
    batch_path = folder / "batch.pt"
    torch.save(dict(batch.tensors), batch_path)
    return mano_path, batch_path


def _status(report, check_id):
    return report.check(check_id).status


def test_gate_without_mano_skips_label_consistency(other_hand):
    _, batch_path = other_hand
    report = utnet_diag.gate(batch=batch_path)
    check = report.check("mano_consistency")
    assert check.status is Status.SKIP and "--mano" in check.message


def test_gate_with_the_labels_mano_checks_them(other_hand):
    mano_path, batch_path = other_hand
    report = utnet_diag.gate(batch=batch_path, mano=mano_path)
    assert _status(report, "mano_consistency") is Status.PASS


def test_embedded_default_gate_still_checks_mano_consistency():
    assert _status(utnet_diag.gate(), "mano_consistency") is Status.PASS


def test_check_batch_mano_option(other_hand, capsys):
    mano_path, batch_path = other_hand
    assert main(["check-batch", str(batch_path), "--mano", str(mano_path), "--json"]) == 0
    checks = {c["id"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert checks["mano_consistency"]["status"] == "pass"
    assert main(["check-batch", str(batch_path), "--mano", str(mano_path.parent / "no.pkl")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not found" in err
