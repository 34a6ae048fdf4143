"""Settings from the environment and the TOML file: defaults, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from lazcancel.errors import SettingsError
from lazcancel.settings import GATEWAYS, load_settings

CREDS = {"LAZADA_APP_KEY": "123456", "LAZADA_APP_SECRET": "s3cret", "LAZADA_ACCESS_TOKEN": "tok"}


def write(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "lazcancel.toml"
    path.write_text(text, encoding="utf-8")
    return {"LAZCANCEL_CONFIG": str(path)}


def test_environment_defines_the_default_seller() -> None:
    settings = load_settings({**CREDS, "LAZADA_REGION": "TH", "LAZCANCEL_RATE_LIMIT": "4"})
    seller = settings.seller("default")
    assert seller.api_url == GATEWAYS["th"]
    assert seller.utc_offset_hours == 7
    assert settings.rate_for("/orders/get") == 4.0
    assert "s3cret" not in repr(seller) and "tok" not in repr(seller)


def test_api_url_overrides_the_region_and_authenticates_itself() -> None:
    url = "http://127.0.0.1:8765/rest"
    seller = load_settings({**CREDS, "LAZADA_REGION": "sg", "LAZADA_API_URL": url}).seller(
        "default"
    )
    assert (seller.api_url, seller.auth_url) == (url, url)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"LAZADA_ACCESS_TOKEN": "t", "LAZADA_REGION": "sg"}, "LAZADA_APP_KEY"),
        (
            {"LAZADA_ACCESS_TOKEN": "t", "LAZADA_REGION": "sg", "LAZADA_APP_KEY": "k"},
            "LAZADA_APP_SECRET",
        ),
        ({**CREDS}, "LAZADA_REGION"),
        ({**CREDS, "LAZADA_REGION": "uk"}, "'uk'"),
        ({**CREDS, "LAZADA_REGION": "sg", "LAZCANCEL_RATE_LIMIT": "fast"}, "LAZCANCEL_RATE_LIMIT"),
        ({**CREDS, "LAZADA_REGION": "sg", "LAZCANCEL_RATE_LIMIT": "0"}, "calls per second"),
    ],
)
def test_missing_or_bad_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(env)


def test_unknown_seller_names_the_fix() -> None:
    with pytest.raises(SettingsError, match="LAZADA_ACCESS_TOKEN"):
        load_settings({}).seller("default")


def test_toml_file_errors_name_the_file_and_key(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings({"LAZCANCEL_CONFIG": str(tmp_path / "nope.toml")})
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(write(tmp_path, "[limits\nrate = 3"))
    with pytest.raises(SettingsError, match=r"limits\.rate must be float"):
        load_settings(write(tmp_path, '[limits]\nrate = "3"'))


def test_several_sellers_and_limits_per_api(tmp_path: Path) -> None:
    env = write(
        tmp_path,
        """
        [app]
        key = "k"
        secret = "s"
        [limits]
        rate = 8
        [limits.per_api]
        "/order/reverse/cancel/create" = 2
        [sellers.shop_vn]
        region = "vn"
        access_token = "a"
        daily_budget = 40
        """,
    )
    settings = load_settings(env)
    shop = settings.seller("shop_vn")
    assert (shop.api_url, shop.daily_budget, shop.utc_offset_hours) == (GATEWAYS["vn"], 40, 7)
    assert settings.rate_for("/order/reverse/cancel/create") == 2.0
    assert settings.rate_for("/orders/get") == 8.0


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ('statuses = "pending"', "statuses must be a list of strings"),
        ('skus = "GONE"', "skus must be a list of strings"),
        ("max_items = 1.5", "max_items must be a whole number"),
        ('dry_run = "yes"', "dry_run must be true or false"),
        ("min_age_hours = true", "min_age_hours must be a number"),
        ("colour = 1", "unknown keys"),
    ],
)
def test_sweep_rules_are_type_checked(tmp_path: Path, rule: str, message: str) -> None:
    env = write(tmp_path, f'[[sweeps]]\nname = "r1"\n{rule}\n')
    with pytest.raises(SettingsError, match=message):
        load_settings(env)


def test_relative_sku_file_is_read_next_to_the_config(tmp_path: Path) -> None:
    env = write(tmp_path, '[[sweeps]]\nname = "r1"\nsku_file = "skus.txt"\nskus = ["A"]\n')
    [rule] = load_settings(env).sweeps
    assert rule.sku_file == str(tmp_path / "skus.txt")
    assert rule.skus == ("A",)


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ("[limits]\nrate = 0", r"\[limits\] rate must be"),
        ("[limits]\nrate = 1e-9", r"\[limits\] rate must be"),
        ('[limits.per_api]\n"/orders/get" = 0', r"\[limits.per_api\] '/orders/get'"),
        ("[limits]\nconcurrency = 0", r"limits\.concurrency must be at least 1"),
        ("[retry]\nattempts = 0", r"retry\.attempts must be at least 1"),
        ("[http]\nread_timeout = 0", r"http\.read_timeout must be a positive"),
        ("max_batch_orders = -5", "max_batch_orders must be at least 1"),
        ("[limitz]\nrate = 3", "unknown key.*limitz"),
        ("[limits]\nrates = 3", r"unknown key.*rates in \[limits\]"),
        ('[sellers.x]\naccess_token = "t"\napi_url = "ftp://x"', r"sellers\.x\.api_url"),
        ('[sellers.x]\naccess_token = "t"\ntoken = "t"', r"unknown key.*token in \[sellers\.x\]"),
    ],
)
def test_config_values_that_cannot_work_are_refused(tmp_path: Path, toml: str, named: str) -> None:
    env = {**CREDS, "LAZADA_REGION": "sg", **write(tmp_path, toml)}
    with pytest.raises(SettingsError, match=named):
        load_settings(env)


@pytest.mark.parametrize("value", ["1e-9", "nan", "inf", "-1"])
def test_rate_limit_variable_must_be_a_sane_rate(value: str) -> None:
    with pytest.raises(SettingsError, match="LAZCANCEL_RATE_LIMIT must be a number of calls"):
        load_settings({**CREDS, "LAZADA_REGION": "sg", "LAZCANCEL_RATE_LIMIT": value})


@pytest.mark.parametrize("url", ["garbage", "ftp://127.0.0.1/rest", "http://"])
def test_api_url_must_be_http(url: str) -> None:
    with pytest.raises(SettingsError, match="LAZADA_API_URL must be an http"):
        load_settings({**CREDS, "LAZADA_API_URL": url})


def test_unreadable_config_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot be read"):
        load_settings({"LAZCANCEL_CONFIG": str(tmp_path)})
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'redis_url = "caf\xe9"\n')
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings({"LAZCANCEL_CONFIG": str(latin)})
