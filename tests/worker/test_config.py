"""Settings: VREC_ prefix, nested on __, secrets stay secret."""

from __future__ import annotations

import pytest

from tests.support.vendors import provider_block
from worker.providers.tencent_vehicle_license import TencentVehicleLicenseSettings
from worker.settings import get_settings, settings_from_env


def test_environment_nesting_and_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "VREC_DATABASE_URL": "sqlite:///x.db",
        "VREC_TENCENT_VEHICLE_LICENSE__SECRET_KEY": "s3cret",
        "VREC_TENCENT_VEHICLE_LICENSE__RATE": "8",
        "VREC_SIMULATOR__LATENCY_MS": "[300, 1500]",
        "PATH": "/usr/bin",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    for settings in (get_settings(), settings_from_env(env)):
        block = provider_block(settings, TencentVehicleLicenseSettings)
        assert settings.database_url == "sqlite:///x.db"
        assert block.rate == 8
        assert block.secret_key is not None
        assert block.secret_key.get_secret_value() == "s3cret"
        assert "s3cret" not in repr(settings)
        assert settings.simulator.latency_ms == (300, 1500)
        assert block.region == "ap-guangzhou"
