"""Configuration: validated once into a frozen object; every problem names its dotted key."""

from __future__ import annotations

from datetime import time, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tests.conftest import PLACEMENT_CONFIG
from tidings.config import (
    ENV_VAR,
    Config,
    FieldType,
    load_config,
    parse_config,
    parse_duration,
)
from tidings.errors import ConfigError, TidingsError


def problems_of(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return dict(caught.value.problems)


# --- defaults ---------------------------------------------------------------------------------


def test_an_empty_config_has_the_documented_defaults() -> None:
    config = parse_config({})

    assert config.timezone == "Europe/London"
    assert config.tz.key == "Europe/London"
    assert config.store.url == "sqlite:///tidings.db"
    assert config.window.cutoff_time == time(17, 0)
    assert config.window.quiet_period is None
    assert config.window.max_wait_period is None
    assert config.audit.retention_days == 90
    assert config.ingest.batch_size == 5000
    assert config.ingest.skip_entities == frozenset()
    assert config.entities == {}


def test_entity_defaults_key_id_no_recipient_and_string_fields() -> None:
    config = parse_config({"entities": {"Thing": {"fields": {"x": {}}}}})
    thing = config.entities["Thing"]

    assert thing.name == "Thing"
    assert thing.key == "id"
    assert thing.recipient is None
    assert thing.ignore == frozenset()
    assert thing.fields["x"].type is FieldType.STRING
    assert thing.display_name == "Thing"


def test_short_field_form_is_the_type_and_labels_fall_back_to_the_field_name() -> None:
    placement = parse_config(PLACEMENT_CONFIG).entities["Placement"]

    assert placement.fields["dateFrom"].type is FieldType.DATE
    assert placement.fields["hours"].type is FieldType.INT
    assert placement.label_of("dateFrom") == "Start date"
    assert placement.label_of("traineeId") == "traineeId"
    assert placement.label_of("undeclared") == "undeclared"
    assert placement.display_name == "placement"
    assert placement.ignore == frozenset({"updatedAt", "amendedBy"})


def test_quiet_period_window_defaults_max_wait_to_one_day_and_has_no_cutoff() -> None:
    window = parse_config({"window": {"quiet": "90m"}}).window

    assert window.cutoff_time is None
    assert window.quiet_period == timedelta(minutes=90)
    assert window.max_wait_period == timedelta(days=1)


def test_config_is_frozen() -> None:
    config = parse_config({})

    with pytest.raises(ValidationError):
        config.timezone = "UTC"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "duration"),
    [
        ("90m", timedelta(minutes=90)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("45s", timedelta(seconds=45)),
    ],
)
def test_parse_duration(text: str, duration: timedelta) -> None:
    assert parse_duration(text) == duration


@pytest.mark.parametrize("text", ["", "  ", "soon", "10", "1w", "h"])
def test_parse_duration_rejects_other_text_with_examples(text: str) -> None:
    with pytest.raises(ValueError, match="write it like '90m', '2h', '1d' or '1h30m'"):
        parse_duration(text)


# --- every error names its dotted key ---------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "key", "reason"),
    [
        ({"window": {"cutoff": "25:00"}}, "window.cutoff", "hour"),
        ({"window": {"cutoff": "5pm"}}, "window.cutoff", "write it as HH:MM"),
        ({"window": {"quiet": "soon"}}, "window.quiet", "is not a duration"),
        (
            {"entities": {"Placement": {"fields": {"dateFrom": "when"}}}},
            "entities.Placement.fields.dateFrom.type",
            "'string', 'int', 'decimal', 'date', 'datetime' or 'bool'",
        ),
        ({"colour": "blue"}, "colour", "Extra inputs are not permitted"),
        ({"window": {"cutoff": "17:00", "quiet": "1h"}}, "window", "not both"),
        ({"window": {"cutoff": "17:00", "max_wait": "1d"}}, "window", "not both"),
        ({"window": {"quiet": "2h", "max_wait": "1h"}}, "window", "max_wait must be at least"),
        ({"timezone": "Mars/Olympus"}, "timezone", "is not an IANA timezone"),
        ({"timezone": "../etc/passwd"}, "timezone", "is not an IANA timezone"),
        (
            {"entities": {"Placement": {"key": "id", "ignore": ["id"]}}},
            "entities.Placement",
            "the key field 'id' cannot be ignored",
        ),
        (
            {"entities": {"Placement": {"recipient": "t", "ignore": ["t"]}}},
            "entities.Placement",
            "the recipient field 't' cannot be ignored",
        ),
        ({"store": {"url": "mysql://db/x"}}, "store.url", "is not supported; use sqlite:///PATH"),
        ({"store": {"colour": "x"}}, "store.colour", "Extra inputs are not permitted"),
        ({"audit": {"retention_days": 0}}, "audit.retention_days", "greater than or equal to 1"),
        ({"ingest": {"batch_size": 0}}, "ingest.batch_size", "greater than or equal to 1"),
    ],
)
def test_each_error_names_its_dotted_key(data: dict[str, Any], key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, path="/etc/tidings.toml")

    assert [k for k, _ in caught.value.problems] == [key]
    assert reason in caught.value.problems[0][1]
    assert not caught.value.problems[0][1].startswith("Value error")
    assert f"  {key}: " in str(caught.value)
    assert "in /etc/tidings.toml" in str(caught.value)


def test_all_problems_are_reported_at_once() -> None:
    problems = problems_of(
        {
            "timezone": "Mars/Olympus",
            "colour": "blue",
            "store": {"url": "mysql://db/x"},
            "window": {"cutoff": "25:00"},
            "entities": {
                "Placement": {"fields": {"dateFrom": "when"}},
                "Person": {"ignore": ["id"]},
            },
        }
    )

    assert set(problems) == {
        "timezone",
        "colour",
        "store.url",
        "window.cutoff",
        "entities.Placement.fields.dateFrom.type",
        "entities.Person",
    }


def test_config_error_is_a_tidings_error_listing_each_problem_on_its_own_line() -> None:
    with pytest.raises(TidingsError) as caught:
        parse_config({"timezone": "Nowhere", "colour": 1})

    lines = str(caught.value).splitlines()
    assert lines[0] == "invalid configuration:"
    assert len(lines) == 3
    assert all(line.startswith("  ") for line in lines[1:])


def test_the_placement_config_from_conftest_is_valid() -> None:
    assert isinstance(parse_config(PLACEMENT_CONFIG), Config)


# --- the store url ----------------------------------------------------------------------------


def test_relative_sqlite_path_resolves_against_the_base_dir(tmp_path: Path) -> None:
    config = parse_config({"store": {"url": "sqlite:///data/t.db"}}, base_dir=tmp_path)

    assert config.store.url == f"sqlite:///{tmp_path.resolve() / 'data' / 't.db'}"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////var/lib/tidings.db",
        "sqlite:///:memory:",
        "sqlite://",
        "postgresql+psycopg://tidings@db/tidings",
    ],
)
def test_absolute_memory_and_postgres_urls_are_kept(url: str, tmp_path: Path) -> None:
    assert parse_config({"store": {"url": url}}, base_dir=tmp_path).store.url == url


def test_without_a_base_dir_a_relative_sqlite_path_is_kept() -> None:
    assert parse_config({"store": {"url": "sqlite:///t.db"}}).store.url == "sqlite:///t.db"


# --- load_config ------------------------------------------------------------------------------


def test_load_config_resolves_a_relative_sqlite_path_against_the_files_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    (conf_dir / "tidings.toml").write_text('[store]\nurl = "sqlite:///state/t.db"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    config = load_config(conf_dir / "tidings.toml")

    assert config.store.url == f"sqlite:///{conf_dir.resolve() / 'state' / 't.db'}"


def test_load_config_on_a_missing_file_says_to_run_init(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"

    with pytest.raises(ConfigError) as caught:
        load_config(missing)

    assert caught.value.path == str(missing)
    assert caught.value.problems[0][0] == "(file)"
    assert f"{missing} does not exist" in str(caught.value)
    assert "tidings init" in str(caught.value)


def test_load_config_on_invalid_toml_reports_the_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('timezone = "Europe/London"\n[window\ncutoff = "17:00"\n')

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert caught.value.path == str(path)
    (key, reason), *_ = caught.value.problems
    assert key == "(syntax)"
    assert "line 2" in reason
    assert str(path) in str(caught.value)


def test_load_config_reports_validation_problems_with_the_file_path(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('[window]\ncutoff = "5pm"\n')

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert caught.value.path == str(path)
    assert [k for k, _ in caught.value.problems] == ["window.cutoff"]


def test_load_config_on_a_file_that_is_not_utf8_raises_config_error(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_bytes(b'timezone = "\xff"\n')

    with pytest.raises(ConfigError):
        load_config(path)


def test_load_config_on_a_directory_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_config(tmp_path)


def test_load_config_honours_the_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "from-env.toml"
    path.write_text('timezone = "Asia/Tokyo"\n')
    monkeypatch.setenv(ENV_VAR, str(path))

    assert ENV_VAR == "TIDINGS_CONFIG"
    assert load_config().timezone == "Asia/Tokyo"


def test_an_explicit_path_wins_over_the_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "env.toml").write_text('timezone = "Asia/Tokyo"\n')
    (tmp_path / "arg.toml").write_text('timezone = "Europe/Paris"\n')
    monkeypatch.setenv("TIDINGS_CONFIG", str(tmp_path / "env.toml"))

    assert load_config(tmp_path / "arg.toml").timezone == "Europe/Paris"


def test_without_path_or_environment_tidings_toml_in_the_working_directory_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tidings.toml").write_text('timezone = "America/New_York"\n')
    monkeypatch.delenv("TIDINGS_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)

    assert load_config().timezone == "America/New_York"


def test_the_starter_config_parses(tmp_path: Path) -> None:
    starter = tmp_path / "tidings.toml"
    starter.write_text(files("tidings").joinpath("starter.toml").read_text(encoding="utf-8"))

    config = load_config(starter)

    assert config.window.cutoff_time == time(17, 0)
    assert config.store.url == f"sqlite:///{tmp_path.resolve() / 'tidings.db'}"
    assert set(config.entities) == {"Placement", "Person"}
    assert config.entities["Placement"].recipient == "traineeId"
    assert config.entities["Placement"].fields["wte"].type is FieldType.DECIMAL
    assert config.entities["Person"].recipient == config.entities["Person"].key == "id"


def test_the_starter_configs_commented_delivery_section_is_valid_when_uncommented() -> None:
    import tomllib
    from importlib import resources

    from tidings.rules import RuleBook
    from tidings.templates import TemplateSet

    text = resources.files("tidings").joinpath("starter.toml").read_text("utf-8")
    head, tail = text.split("# --- Telling people")
    body = [
        line[2:] if line.startswith("# ") else ""
        for line in tail.splitlines()[3:]
        if not line.startswith("# # ")
    ]
    config = parse_config(tomllib.loads(head + "\n".join(body)))
    assert [r.name for r in config.rules] == ["current-placements", "start-date-moves"]
    assert RuleBook.compile(config).has_rules()
    TemplateSet.load(config)
