"""Configuration order: defaults, then the environment, then overrides."""

from __future__ import annotations

from pathlib import Path

from brokerage.core.config import load_config


def test_defaults_put_a_sqlite_file_in_the_data_dir(tmp_path: Path) -> None:
    config = load_config(environ={}, overrides={"DATA_DIR": str(tmp_path)})
    assert config["DATABASE_URL"] == f"sqlite:///{tmp_path / 'brokerage.db'}"
    assert config["REDIS_URL"] == "redis://127.0.0.1:6379/0"


def test_prefixed_environment_then_overrides() -> None:
    environ = {
        "BROKERAGE_SMTP_PORT": "2525",
        "BROKERAGE_MAIL_DOMAIN": "example.org",
        "BROKERAGE_AUTO_MIGRATE": "false",
        "DATABASE_URL": "postgresql://db/x",
        "REDIS_URL": "redis://r:1/2",
        "UNRELATED": "1",
    }
    config = load_config(environ=environ, overrides={"MAIL_DOMAIN": "override.example"})
    assert config["SMTP_PORT"] == 2525
    assert config["AUTO_MIGRATE"] is False
    assert config["MAIL_DOMAIN"] == "override.example"
    assert config["DATABASE_URL"] == "postgresql://db/x"
    assert config["REDIS_URL"] == "redis://r:1/2"
    assert "UNRELATED" not in config


def test_prefixed_database_url_wins_over_the_plain_one() -> None:
    config = load_config(
        environ={"DATABASE_URL": "postgresql://a/x", "BROKERAGE_DATABASE_URL": "postgresql://b/y"}
    )
    assert config["DATABASE_URL"] == "postgresql://b/y"
