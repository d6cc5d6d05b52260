"""All five vendors through `vrec run`, then the documented views, on SQLite and PostgreSQL:
what the adapters parse is what SQL users get back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from models.db import make_engine
from worker.cli import app
from worker.providers.registry import names
from worker.settings import get_settings
from worker.simulator.samples import everything, plate_of


def test_all_vendors_into_the_views(
    vendor_env: dict[str, str],
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VREC_DATABASE_URL", db_url)
    get_settings.cache_clear()
    folder = tmp_path / "cars"
    folder.mkdir()
    for i in range(3):  # a car with its plate beside a licence page: every vendor reads it
        (folder / f"car{i}.jpg").write_bytes(everything(100 + i, (1800, 700)))
    providers = [arg for name in names() for arg in ("-p", name)]
    result = CliRunner().invoke(app, ["run", str(folder), *providers, "--label", "all", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["counts"]["succeeded"] == 3 * len(names())

    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:

            def rows(sql: str) -> list[tuple[Any, ...]]:
                return [tuple(r) for r in conn.execute(text(sql))]

            plates = rows("SELECT plate_no, provider, image_id FROM v_latest_plate")
            assert {p for p, _, _ in plates} == {plate_of(100 + i) for i in range(3)}  # as drawn
            # The latest reading per image *and* plate provider: every vendor's plate is found.
            plate_vendors = {"juhe_plate", "tianapi_plate", "aliyun_plate"}
            assert {prov for _, prov, _ in plates} == plate_vendors
            assert len({(image, prov) for _, prov, image in plates}) == 3 * len(plate_vendors)
            per_vendor = rows(
                "SELECT provider, COUNT(DISTINCT image_id) FROM plate_readings GROUP BY provider"
            )
            assert dict(per_vendor) == {"juhe_plate": 3, "tianapi_plate": 3, "aliyun_plate": 3}
            cars = rows("SELECT name, score, color FROM v_top_car_model")
            assert len(cars) == 3
            assert all(name and 0 < float(str(score)) <= 1 and color for name, score, color in cars)
            licences = rows("SELECT vin, plate_no FROM v_vehicle_licenses")
            assert len(licences) == 3
            vin = licences[0][0]
            found = rows(f"SELECT COUNT(*) FROM v_vehicle_licenses WHERE vin = '{vin}'")
            assert found == [(1,)]
            calls = rows("SELECT provider, jobs, calls, billed_calls FROM v_batch_calls")
            assert sorted(calls) == sorted((n, 3, 3, 3) for n in names())
            assert rows("SELECT COUNT(*) FROM v_failures") == [(0,)]
    finally:
        engine.dispose()
