"""Typed report sections: JSON fields, None left out, read access by JSON key, rendering."""

from __future__ import annotations

import json
import math

import pytest
from rich.console import Console

from utnet_diag.report.render import render_report
from utnet_diag.report.result import Report
from utnet_diag.report.sections import (
    BatchSection,
    CompareRunSection,
    MetricsSection,
    RunSection,
    Section,
)


def _run(**extra) -> RunSection:
    return RunSection(model="m", batch="b.pt", batch_size=4, device="cpu", config="c.yaml",
                      mode="train", **extra)  # fmt: skip


def test_fields_that_are_none_are_left_out_of_the_json_and_of_key_access():
    section = _run(seed=3)
    data = json.loads(section.to_json())
    assert data == {"model": "m", "batch": "b.pt", "batch_size": 4, "device": "cpu",
                    "config": "c.yaml", "mode": "train", "seed": 3}  # fmt: skip
    assert section["seed"] == 3 and "seed" in section
    assert "notes" not in section and section.get("notes", []) == []
    with pytest.raises(KeyError):
        section["forward_s"]
    with pytest.raises(KeyError):
        section["not_a_field"]


def test_a_field_named_keys_is_data_not_a_method():
    section = BatchSection(size=2, keys={"rgb": [2, 3, 8, 8]}, format="canonical")
    assert section.keys == {"rgb": [2, 3, 8, 8]}
    assert section["keys"] == {"rgb": [2, 3, 8, 8]}
    assert section.to_dict()["keys"] == {"rgb": [2, 3, 8, 8]}
    assert section.to_dict()["notes"] == [] and "source" not in section.to_dict()


def test_non_finite_numbers_become_strings_and_the_report_json_is_strict():
    metrics = MetricsSection(mpjpe_mm=math.nan, pa_mpjpe_mm=math.inf, avg_metric_mm=1.5,
                             samples=0, samples_left_out=4)  # fmt: skip
    report = Report("loss-breakdown", [], {"metrics": metrics})
    data = json.loads(report.to_json())  # allow_nan=False: raises on a bare NaN
    assert data["metrics"] == {"mpjpe_mm": "nan", "pa_mpjpe_mm": "inf", "avg_metric_mm": 1.5,
                               "samples": 0, "samples_left_out": 4}  # fmt: skip


def test_sections_are_frozen():
    section = _run()
    with pytest.raises(AttributeError):
        section.model = "other"  # type: ignore[misc]


def test_a_section_without_a_renderer_is_drawn_as_a_key_value_table():
    run = CompareRunSection(a="a.pt", b="b.pt", model_a="A", model_b="B", batch="x",
                            batch_size=2, device="cpu", weights="config", seed=0)  # fmt: skip
    console = Console(width=80, record=True)
    render_report(Report("compare", [], {"odd_one": run}), console)
    text = console.export_text()
    table = text.split("utnet-diag compare")[1]  # between the verdict lines
    assert "odd one" in table and "a.pt" in table and "model_b" in table
    assert "warnings" not in table


def test_every_typed_section_is_a_section_with_its_own_docstring():
    import utnet_diag.report.sections as sections

    kinds = [v for v in vars(sections).values()
             if isinstance(v, type) and issubclass(v, Section) and v is not Section]  # fmt: skip
    assert len(kinds) >= 7
    assert all(k.__doc__ and k.__doc__ != Section.__doc__ for k in kinds)


# --- the sections typed last: null kept where the JSON always had it, mappings as mappings ----


def test_keep_none_sections_show_null_and_omit_none_fields_stay_out():
    from utnet_diag.report.sections import LoaderSection, NanOriginSection

    origin = NanOriginSection(stage="forward", where="refine.1", message="m")
    assert json.loads(origin.to_json())["node"] is None and origin["node"] is None
    loader = LoaderSection(loader="m:D", args={}, dataset_length=None, samples=4,
                           augmentation_switch=None)  # fmt: skip
    data = loader.to_dict()
    assert data["dataset_length"] is None and data["augmentation_switch"] is None
    assert "other_batch" not in data and loader.get("other_batch", "absent") == "absent"


def test_weight_advice_has_two_shapes():
    from utnet_diag.report.sections import WeightAdviceSection

    unavailable = WeightAdviceSection(target_shares={"loss_2d": 0.5}, unavailable="why")
    assert unavailable.to_dict() == {"unavailable": "why", "target_shares": {"loss_2d": 0.5}}
    advice = WeightAdviceSection(target_shares={}, rows=[], normalisation="n", notes=[])
    assert advice.to_dict() == {"rows": [], "target_shares": {}, "normalisation": "n",
                                "explanation": None, "notes": []}  # fmt: skip


def test_a_mapping_section_is_its_entries():
    from utnet_diag.report.sections import LogTerm, LogTermsSection

    row = LogTerm(label="2D", blocks=3, nonfinite=1, first=None, last=2.0, min=1.0, max=2.0,
                  series=[1.0, None])  # fmt: skip
    terms = LogTermsSection({"loss_2d": row})
    assert list(terms) == ["loss_2d"] and len(terms) == 1 and "loss_2d" in terms
    assert terms["loss_2d"]["label"] == "2D" and dict(terms.items())["loss_2d"] is row
    assert json.loads(terms.to_json()) == {"loss_2d": {
        "label": "2D", "blocks": 3, "nonfinite": 1, "first": None, "last": 2.0, "min": 1.0,
        "max": 2.0, "series": [1.0, None]}}  # fmt: skip


@pytest.mark.slow
def test_every_section_of_every_command_is_typed(tmp_path):
    """Each command's report holds only Section objects (no dict left), and all are JSON."""
    from utnet_diag.datasets.batch import open_reader
    from utnet_diag.datasets.scan import scan_dataset
    from utnet_diag.diagnostics.check_batch import check_batch
    from utnet_diag.diagnostics.compare import compare
    from utnet_diag.diagnostics.gate import gate
    from utnet_diag.diagnostics.grad_flow import grad_flow
    from utnet_diag.diagnostics.overfit import OverfitOptions, overfit
    from utnet_diag.diagnostics.runner import load_inputs
    from utnet_diag.logs.checks import diagnose_log
    from utnet_diag.mano.convert import convert_mano, mano_info
    from utnet_diag.model.sources import inspect_checkpoint
    from utnet_diag.synthetic.sample import default_batch, make_sample
    from utnet_diag.synthetic.trees import write_ho3d_tree

    sample = make_sample(tmp_path / "sample")
    ckpt, mano = tmp_path / "sample" / "reference.pt", tmp_path / "sample" / "MANO_RIGHT.pkl"
    write_ho3d_tree(tmp_path / "ho3d", frames_per_sequence=2, faults={"mm_joints": [1]})
    log = tmp_path / "train.log"
    log.write_text("[Epoch 0, Iter 0] Loss breakdown:\n  2D keypoint loss: 300.0\n"
                   "  3D joint loss: 7000.0\n  Total loss: 353.0\n")  # fmt: skip
    reports = [
        sample,
        check_batch(default_batch(), overlay=tmp_path / "o.png"),
        gate(amp="bf16", overlay=tmp_path / "g.png", overlay_samples=1),
        grad_flow(exact=True),
        diagnose_log(log),
        scan_dataset(
            open_reader("ho3d", tmp_path / "ho3d", None, None),
            images=True,
            gallery=tmp_path / "gallery",
        ),  # fmt: skip
        inspect_checkpoint(ckpt),
        compare(ckpt, ckpt),
        mano_info(mano),
        convert_mano(mano, tmp_path / "mano" / "MANO_RIGHT.pkl"),
        overfit(load_inputs(), OverfitOptions(steps=3)),
    ]
    for report in reports:
        for name, section in report.sections.items():
            assert isinstance(section, Section), (report.command, name, type(section))
            json.loads(section.to_json())
