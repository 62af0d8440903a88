"""Settings.from_env: environment over .env over defaults; a bad value names its variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import ConfigError, Settings


def test_with_nothing_set_the_defaults_apply(tmp_path: Path) -> None:
    assert Settings.from_env({}, env_file=tmp_path / "missing.env") == Settings()
    assert Settings.from_env({}, env_file=None) == Settings()


def test_every_variable_is_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "NATS_URL": "nats://nats:4222",
            "DUCKDB_PATH": "/data/x.db",
            "DUCKDB_POOL_SIZE": "3",
            "MIGRATION_MODE": "yes",
            "ENABLE_JETSTREAM_SYNC": "off",
            "EKKO_WORKERS_PER_SUBJECT": "4",
            "EKKO_WRITE_WORKERS_PER_SUBJECT": "12",
            "EKKO_GET_WORKERS_PER_SUBJECT": "6",
            "EKKO_CACHE_ENTRIES": "0",
            "BCRYPT_ROUNDS": "10",
            "EKKO_LOG_LEVEL": "debug",
        },
        env_file=None,
    )
    assert settings == Settings(
        nats_url="nats://nats:4222",
        duckdb_path=Path("/data/x.db"),
        duckdb_pool_size=3,
        migration_mode=True,
        enable_jetstream_sync=False,
        workers_per_subject=4,
        write_workers_per_subject=12,
        get_workers_per_subject=6,
        cache_entries=0,
        bcrypt_rounds=10,
        log_level="DEBUG",
    )
    assert settings.data_dir == Path("/data")


def test_a_dotenv_file_is_read_and_the_environment_wins_over_it(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# comment\nexport DUCKDB_PATH='/from/dotenv.db'\nNATS_URL=\"nats://dotenv:4222\"\nDUCKDB_POOL_SIZE=5\n"
    )
    from_file = Settings.from_env({}, env_file=env_file)
    assert (from_file.duckdb_path, from_file.nats_url, from_file.duckdb_pool_size) == (
        Path("/from/dotenv.db"),
        "nats://dotenv:4222",
        5,
    )
    both = Settings.from_env({"DUCKDB_POOL_SIZE": "7"}, env_file=env_file)
    assert both.duckdb_pool_size == 7
    assert both.duckdb_path == Path("/from/dotenv.db")


def test_blank_values_fall_back_to_the_defaults() -> None:
    settings = Settings.from_env({"NATS_URL": "  ", "DUCKDB_PATH": "", "EKKO_LOG_LEVEL": ""}, env_file=None)
    assert (settings.nats_url, settings.duckdb_path, settings.log_level) == (None, Settings().duckdb_path, "INFO")


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", " yes ", "on"])
def test_true_spellings(raw: str) -> None:
    assert Settings.from_env({"MIGRATION_MODE": raw}, env_file=None).migration_mode is True


@pytest.mark.parametrize("raw", ["0", "false", "No", "off", ""])
def test_false_spellings(raw: str) -> None:
    assert Settings.from_env({"ENABLE_JETSTREAM_SYNC": raw}, env_file=None).enable_jetstream_sync is False


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("DUCKDB_POOL_SIZE", "ten"),
        ("DUCKDB_POOL_SIZE", "0"),
        ("EKKO_WORKERS_PER_SUBJECT", "-1"),
        ("EKKO_WRITE_WORKERS_PER_SUBJECT", "0"),
        ("EKKO_CACHE_ENTRIES", "-5"),
        ("EKKO_CACHE_ENTRIES", "1.5"),
        ("BCRYPT_ROUNDS", "3"),
        ("MIGRATION_MODE", "maybe"),
        ("ENABLE_JETSTREAM_SYNC", "2"),
        ("EKKO_DEPLOYMENT", "has.dots"),
        ("EKKO_DEPLOYMENT", "with space"),
        ("EKKO_DEPLOYMENT", "wild*"),
        ("EKKO_LEASE_TTL", "2"),
        ("EKKO_ENDPOINT_STATS", "sometimes"),
    ],
)
def test_a_bad_value_raises_a_config_error_naming_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: raw}, env_file=None)


def test_a_bad_value_in_the_dotenv_file_names_the_variable_too(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("BCRYPT_ROUNDS=lots\n")
    with pytest.raises(ConfigError, match="BCRYPT_ROUNDS"):
        Settings.from_env({}, env_file=env_file)


def test_settings_built_in_code_are_checked_too() -> None:
    with pytest.raises(ConfigError, match="DUCKDB_POOL_SIZE"):
        Settings(duckdb_pool_size=0)
    with pytest.raises(ConfigError, match="EKKO_WORKERS_PER_SUBJECT"):
        Settings().with_(workers_per_subject=0)
    with pytest.raises(ConfigError, match="EKKO_GET_WORKERS_PER_SUBJECT"):
        Settings().with_(get_workers_per_subject=0)
    with pytest.raises(ConfigError, match="EKKO_GET_WORKERS_PER_SUBJECT"):
        Settings.from_env({"EKKO_GET_WORKERS_PER_SUBJECT": "0"}, env_file=None)


def test_deployment_lease_and_counting_are_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {"EKKO_DEPLOYMENT": "eu-west_2", "EKKO_LEASE_TTL": "30", "EKKO_ENDPOINT_STATS": "false"}, env_file=None
    )
    assert (settings.deployment, settings.lease_ttl, settings.endpoint_stats) == ("eu-west_2", 30, False)
    assert (Settings().deployment, Settings().lease_ttl, Settings().endpoint_stats) == ("ekko", 15, True)


def test_the_database_path_is_absolute_whatever_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert Settings().duckdb_path == tmp_path / "data" / "ekko.db"
    assert Settings.from_env({"DUCKDB_PATH": "rel/x.db"}, env_file=None).duckdb_path == tmp_path / "rel" / "x.db"
    assert Settings(duckdb_path=Path("/abs/y.db")).duckdb_path == Path("/abs/y.db")
