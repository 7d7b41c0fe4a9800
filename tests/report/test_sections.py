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
