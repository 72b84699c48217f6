"""The one category table: derived from the detector's scheme, overridden by a city's CSV and settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from api.categories import DEFAULT_LIMITS, FALLBACK_MINUTES, default_table, load_table
from api.errors import InputError
from api.settings import Settings
from tests.api.conftest import Env
from vision.flags import DEFAULT_SCHEME


def test_the_table_has_the_detectors_codes_and_names() -> None:
    table = default_table()
    scheme = {c.code: (c.name, c.name_en) for c in DEFAULT_SCHEME.by_class.values()}
    assert table.codes() == sorted(scheme) == ["0101", "0102", "0505", "0506", "0507"]
    assert {code: (c.name_zh, c.name_en) for code, c in table.by_code.items()} == scheme
    assert table.urgent_codes() == frozenset({"0505"})
    assert table.handle_minutes()["0101"] == dict(DEFAULT_LIMITS["0101"])
    assert table.handle_minutes()["*"] == dict(FALLBACK_MINUTES)


def test_unknown_category_names_the_valid_codes() -> None:
    with pytest.raises(
        InputError, match=r"unknown category 'clutter'; valid codes: 0101 私搭乱建, 0102"
    ) as error:
        default_table().require("clutter")
    assert error.value.where == {"field": "category"}


def test_a_citys_csv_and_settings_override_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "city.csv"
    path.write_text(
        "class_name,code,name,name_en,standard\ngraffiti,0113,乱涂写,graffiti,\n", encoding="utf-8"
    )
    table = load_table(path, limits={"0113": {"compound": 90}, "*": {"street": 10}}, urgent=["0113"])
    graffiti = table.require("0113")
    assert (graffiti.name_zh, graffiti.urgent, graffiti.standard) == ("乱涂写", True, "GB/T 30428.2-2013")
    assert dict(graffiti.handle_minutes) == {"compound": 90, "community": 48 * 60, "street": 10}
    assert table.require("0505").urgent is False and table.require("0505").handle_minutes["compound"] == 60


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"9999": {"compound": 5}}, "unknown category '9999'"),
        ({"0505": {"block": 5}}, r"handle_minutes\['0505'\]: unknown level\(s\) block"),
    ],
)
def test_bad_limits_are_refused(limits: dict[str, dict[str, int]], message: str) -> None:
    with pytest.raises(InputError, match=message):
        load_table(None, limits=limits, urgent=[])


def test_a_missing_city_csv_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"city\.csv: category table not found"):
        Settings(jwt_secret=SecretStr("x" * 40), categories_csv=tmp_path / "city.csv").category_table()


def test_categories_endpoint(env: Env) -> None:
    body = env.client.get("/api/v1/categories").json()
    parking = next(c for c in body if c["code"] == "0505")
    assert (parking["name_zh"], parking["name_en"], parking["urgent"]) == (
        "机动车乱停放",
        "illegal car parking",
        True,
    )
    assert parking["handle_minutes"] == {"compound": 60, "community": 120, "street": 240}
