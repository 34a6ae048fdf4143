"""The example configuration: it loads, its sweep schedules are valid, and it names exactly the
keys lazcancel/settings.py reads (so a new setting cannot go undocumented)."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

import lazcancel.settings as settings_module
from lazcancel.settings import SweepRule, load_settings
from worker.settings import sweep_cron_jobs

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "lazcancel.example.toml"


def keys_read_by_settings() -> set[str]:
    source = Path(settings_module.__file__).read_text(encoding="utf-8")
    keys = set(re.findall(r'_get\(\w+, "([\w.]+)"', source))
    keys |= {f"{t}.{k}" for t, k in re.findall(r'_table\((\w+), "(\w+)"\)', source) if t != "doc"}
    seller_body = source[source.index("def _seller(") : source.index("def _auth_url_for(")]
    keys |= {f"sellers.*.{k}" for k in re.findall(r'raw(?:\.get\(|\[)"(\w+)"', seller_body)}
    keys |= {f"sweeps.{f.name}" for f in dataclasses.fields(SweepRule)}
    return keys


def keys_in_example(doc: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for key, value in doc.items():
        if key == "sellers":
            found |= {f"sellers.*.{k}" for seller in value.values() for k in seller}
        elif key == "sweeps":
            found |= {"sweeps"} | {f"sweeps.{k}" for rule in value for k in rule}
        elif isinstance(value, dict):
            for sub, inner in value.items():
                found.add(f"{key}.{sub}")
                if isinstance(inner, dict) and sub != "per_api":
                    found |= {f"{key}.{sub}.{k}" for k in inner}
        else:
            found.add(key)
    return found


def test_the_example_names_every_key_settings_reads_and_no_other() -> None:
    doc = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    expected = keys_read_by_settings()
    assert "limits.rate" in expected and "sellers.*.daily_budget" in expected
    assert "sweeps.schedule" in expected

    assert keys_in_example(doc) == expected


def test_the_example_loads_and_stays_on_this_machine() -> None:
    settings = load_settings({"LAZCANCEL_CONFIG": str(EXAMPLE)})

    assert settings.confirm_threshold == 200
    assert settings.sellers["shop_sg"].daily_budget == 150
    assert settings.sellers["shop_th"].utc_offset_hours == 7
    assert {s.api_url for s in settings.sellers.values()} == {"http://127.0.0.1:8765/rest"}
    assert settings.redis_url is not None and "127.0.0.1" in settings.redis_url
    assert [rule.name for rule in settings.sweeps] == ["out-of-stock", "stuck-unpacked"]
    assert [job.name for job in sweep_cron_jobs(settings.sweeps)] == [
        "sweep:out-of-stock",
        "sweep:stuck-unpacked",
    ]
