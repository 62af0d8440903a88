"""Issue 10: how ekko connects to NATS (user, creds, nkey, TLS) and the bundled server's passwords."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from service.app import broker_security
from service.cli.natsd import local_passwords
from service.config import (
    NATS_PASSWORD_VARIABLES,
    ConfigError,
    Settings,
    local_credentials_path,
    read_local_credentials,
    redacted,
    with_local_service_user,
)


def test_user_and_password_become_connect_options() -> None:
    settings = Settings.from_env({"NATS_USER": "ekko", "NATS_PASSWORD": "s3cret"}, env_file=None)
    assert settings.nats_options() == {"user": "ekko", "password": "s3cret"}
    assert broker_security(settings) is not None


def test_creds_and_nkey_files_become_connect_options() -> None:
    creds = Settings.from_env({"NATS_CREDS": "/run/ekko.creds"}, env_file=None)
    assert creds.nats_options() == {"user_credentials": "/run/ekko.creds"}
    seed = Settings.from_env({"NATS_NKEY_SEED": "/run/ekko.nk"}, env_file=None)
    assert seed.nats_options() == {"nkeys_seed": "/run/ekko.nk"}


@pytest.mark.parametrize(
    "environ",
    [
        {"NATS_USER": "a", "NATS_CREDS": "/x"},
        {"NATS_URL": "nats://a:b@h:4222", "NATS_USER": "a"},
        {"NATS_PASSWORD": "b"},
        {"NATS_TLS_CERT": "/c.pem"},
    ],
)
def test_ambiguous_or_half_given_credentials_are_a_config_error(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        Settings.from_env(environ, env_file=None)


def test_tls_without_a_ca_file_that_exists_fails_clearly(tmp_path: Path) -> None:
    settings = Settings.from_env({"NATS_TLS_CA": str(tmp_path / "missing.pem")}, env_file=None)
    with pytest.raises(FileNotFoundError):
        settings.nats_options()


def test_limits_and_backup_settings_are_read() -> None:
    settings = Settings.from_env(
        {
            "EKKO_LOGIN_MAX_FAILURES": "5",
            "EKKO_LOGIN_FAILURE_WINDOW": "60",
            "EKKO_BCRYPT_WORKERS": "3",
            "EKKO_BACKUP_KEEP": "4",
        },
        env_file=None,
    )
    assert (settings.login_max_failures, settings.login_failure_window) == (5, 60.0)
    assert (settings.bcrypt_workers, settings.backup_keep) == (3, 4)


def test_passwords_never_appear_in_a_printed_url() -> None:
    assert redacted("nats://ekko:p@ss@nats:4222") == "nats://ekko:***@nats:4222"
    assert redacted("nats://nats:4222") == "nats://nats:4222"


def test_the_bundled_server_passwords_are_generated_once_owner_only(tmp_path: Path) -> None:
    settings = Settings(duckdb_path=tmp_path / "data" / "ekko.db")
    first = local_passwords(settings)
    assert set(first) == set(NATS_PASSWORD_VARIABLES.values())
    assert len(set(first.values())) == 4 and all(len(p) >= 24 for p in first.values())
    path = local_credentials_path(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert local_passwords(settings) == first == read_local_credentials(settings)
    local = with_local_service_user(settings)
    assert (local.nats_user, local.nats_password) == ("ekko", first["EKKO_SERVICE_PASSWORD"])
    # explicit credentials or a NATS_URL win over the generated ones
    assert with_local_service_user(settings.with_(nats_url="nats://x:4222")).nats_user is None
