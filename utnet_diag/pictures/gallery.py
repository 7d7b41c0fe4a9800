"""``scan --gallery DIR``: for each check that found something, a sheet of its worst frames drawn
from the dataset's own images and labels, and an ``index.html`` that links the sheets with the
findings table (a static page: open it in a browser, no server).

The worst frames of a check: failures before warnings, then the largest measured value (where
the finding has a number), then the reader's order; at most 16 (:data:`GALLERY_FRAMES`). Frames
are read again with their images and cropped as ``check-batch --dataset`` crops them; a frame
without a usable annotation (a missing or unreadable file) cannot be drawn: the page says so.
"""

from __future__ import annotations

import html
import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from utnet_diag.errors import InputError
from utnet_diag.io.files import write_bytes_atomic
from utnet_diag.pictures.draw import draw_sheet
from utnet_diag.pictures.overlay import batch_views
from utnet_diag.report.result import CheckResult

GALLERY_FRAMES = 16
SEVERITY_ORDER = {"fail": 0, "warn": 1}


def check_gallery_dir(path: str | os.PathLike) -> Path:
    """The ``--gallery`` folder, checked before the scan: an existing writable folder, or one to
    create in an existing writable folder. InputError otherwise."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise InputError("--gallery is a file; give a folder", path=str(out))
    parent = out if out.is_dir() else (out.parent if str(out.parent) else Path("."))
    if not parent.is_dir():
        raise InputError("--gallery: the folder above it does not exist", path=str(parent))
    if not os.access(parent, os.W_OK):
        raise InputError("--gallery: folder is not writable", path=str(parent))
    return out


def _magnitude(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return -math.inf
    return abs(float(value)) if math.isfinite(value) else math.inf


def worst(findings: Sequence[Any], limit: int = GALLERY_FRAMES) -> list[Any]:
    """Failures first, then the largest measured value, then the reader's order; one per frame."""
    ranked = sorted(findings, key=lambda f: (SEVERITY_ORDER.get(f.severity, 2),
                                             -_magnitude(f.value), f.index))  # fmt: skip
    out, seen = [], set()
    for finding in ranked:
        if finding.index not in seen:
            seen.add(finding.index)
            out.append(finding)
    return out[:limit]


def _sheet(reader: Any, chosen: list[Any], check_id: str) -> tuple[bytes | None, list[str]]:
    """The PNG of ``chosen`` findings' frames, and the ids of those that could not be drawn."""
    # deferred: the dataset batch builder loads torch, which drawing does not need
    from utnet_diag.datasets.batch import batch_from_records

    records = [reader.read(f.index, True) for f in chosen]
    drawable = [r for r in records if r.annotated]
    missing = [r.sample_id for r in records if not r.annotated]
    if not drawable:
        return None, missing
    try:
        batch = batch_from_records(reader, drawable)
    except InputError:
        return None, [r.sample_id for r in records]
    views = batch_views(batch, samples=len(drawable))
    message = {f.sample_id: f"{f.severity.upper()} {f.message}" for f in chosen}
    for view in views:
        view.sample_id = batch.sample_ids[view.index]
        view.caption = ["ground truth"] + [message.get(view.sample_id, "")]
    title = f"utnet-diag scan: {check_id}, {len(views)} worst frames ({reader.name})"
    buffer = io.BytesIO()
    draw_sheet(views, title).save(buffer, format="PNG")
    return buffer.getvalue(), missing


def write_gallery(directory: str | os.PathLike, reader: Any, kept: Mapping[str, Sequence[Any]],
                  checks: Sequence[CheckResult], scan: Mapping[str, Any]) -> dict[str, Any]:  # fmt: skip
    """One sheet per check with findings (``<check>.png``) and ``index.html`` in ``directory``.
    ``kept``: check id -> its findings (a scan's kept ones). Returns the report's record."""
    out = check_gallery_dir(directory)
    out.mkdir(exist_ok=True)
    sheets: dict[str, dict[str, Any]] = {}
    for check_id, findings in kept.items():
        if not findings:
            continue
        chosen = worst(findings)
        png, missing = _sheet(reader, chosen, check_id)
        name = f"{check_id.replace(':', '_')}.png"
        if png is not None:
            write_bytes_atomic(out / name, png)
        sheets[check_id] = {"file": name if png is not None else None,
                            "frames": [f.sample_id for f in chosen], "undrawn": missing}  # fmt: skip
    write_bytes_atomic(out / "index.html", _page(checks, sheets, scan).encode("utf-8"))
    return {"kind": "gallery", "path": str(out / "index.html"),
            "sheets": {k: v["file"] for k, v in sheets.items() if v["file"]}}  # fmt: skip


def _page(checks: Sequence[CheckResult], sheets: Mapping[str, dict[str, Any]],
          scan: Mapping[str, Any]) -> str:  # fmt: skip
    e = html.escape
    rows = []
    for check in checks:
        sheet = sheets.get(check.id)
        link = f'<a href="#{e(check.id)}">frames</a>' if sheet and sheet["file"] else ""
        rows.append(f"<tr class=\"{e(check.status.value)}\"><td>{e(check.status.value.upper())}"
                    f"</td><td><code>{e(check.id)}</code></td><td>{e(check.message)}</td>"
                    f"<td>{link}</td></tr>")  # fmt: skip
    blocks = []
    for check_id, sheet in sheets.items():
        note = ""
        if sheet["undrawn"]:
            note = (f"<p>not drawn (no usable annotation): "
                    f"{e(', '.join(map(str, sheet['undrawn'])))}</p>")  # fmt: skip
        image = (f'<img src="{e(sheet["file"])}" alt="{e(check_id)}">' if sheet["file"]
                 else "<p>no frame of this check can be drawn</p>")  # fmt: skip
        blocks.append(f'<h2 id="{e(check_id)}"><code>{e(check_id)}</code></h2>'
                      f"<p>frames, worst first: {e(', '.join(map(str, sheet['frames'])))}</p>"
                      f"{note}{image}")  # fmt: skip
    head = (f"{e(str(scan.get('dataset', '')))} {e(str(scan.get('split', '')))}"
            f" at {e(str(scan.get('root', '')))}: {e(str(scan.get('status', '')))}")  # fmt: skip
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>utnet-diag scan gallery</title>
<style>body{{font-family:sans-serif;margin:1.5em}}td{{padding:2px 8px;vertical-align:top}}
tr.fail td:first-child{{color:#c00;font-weight:bold}}tr.warn td:first-child{{color:#b60}}
img{{max-width:100%;border:1px solid #ccc}}</style></head><body>
<h1>utnet-diag scan gallery</h1><p>{head}</p>
<table><tr><th>status</th><th>check</th><th>result</th><th></th></tr>
{chr(10).join(rows)}
</table>
{chr(10).join(blocks)}
</body></html>
"""
