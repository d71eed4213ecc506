"""Configuration order: defaults, then the environment, then overrides."""

from __future__ import annotations

from pathlib import Path

from brokerage.core.config import load_config

REPO = Path(__file__).resolve().parents[2]


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


def _settings_read_in_code() -> set[str]:
    import re

    read = re.compile(r"config(?:\[|\.get\()\s*[\"']([A-Z][A-Z0-9_]+)[\"']")
    names: set[str] = set()
    for folder in ("core", "platform", "sandbox", "submissions", "review_tool"):
        for path in (REPO / folder).rglob("*.py"):
            names |= set(read.findall(path.read_text()))
    return names - FLASK_OWN


FLASK_OWN = {"SESSION_COOKIE_SAMESITE"}
"""Flask's own settings, which the app sets itself"""


def test_every_setting_read_in_code_is_in_the_table() -> None:
    from brokerage.core.config import DEFAULTS

    assert _settings_read_in_code() - set(DEFAULTS) == set()


def test_the_readme_lists_every_setting() -> None:
    from brokerage.core.config import SETTINGS

    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Configuration") : readme.index("## Command line")]
    assert [s.name for s in SETTINGS if f"`{s.name}`" not in section] == []


def test_load_config_gives_every_setting_its_default() -> None:
    from brokerage.core.config import SETTINGS, load_config

    config = load_config(environ={}, overrides={"DATA_DIR": "/tmp/brokerage-test"})
    assert {s.name for s in SETTINGS} <= set(config)
    assert config["SANDBOX_POOL_BLANK"] == 1 and config["EGRESS_PORTS"] == (80, 443)
