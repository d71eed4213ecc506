"""The Flask application factory."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from brokerage.core.config import load_config
from brokerage.core.errors import ApiError
from brokerage.platform import catalogue, db
from brokerage.platform.api import contract
from brokerage.platform.runtime import Runtime


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(load_config(overrides=test_config))
    app.config["SECRET_KEY"] = app.config["SECRET_KEY"] or _stored_secret_key(
        app.config["DATA_DIR"]
    )
    runtime = Runtime.from_config(dict(app.config))
    app.extensions["brokerage.runtime"] = runtime
    app.extensions["brokerage.engine"] = runtime.engine
    app.extensions["brokerage.cipher"] = runtime.cipher
    db.init_app(app, runtime.sessions)
    if app.config["AUTO_MIGRATE"]:
        prepare_database(app)
    _register_error_handlers(app)
    contract.install(app)
    _register_blueprints(app)
    return app


def prepare_database(app: Flask) -> None:
    """Migrate to the newest schema and install the built-in brokers (idempotent)."""
    db.upgrade(app.extensions["brokerage.engine"])
    with db.session_scope(app.extensions["brokerage.sessionmaker"]) as session:
        catalogue.install_builtin_brokers(session)


def _stored_secret_key(data_dir: str) -> str:
    path = Path(data_dir) / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def _register_blueprints(app: Flask) -> None:
    from brokerage.platform import metrics
    from brokerage.platform.api import brokers as brokers_api
    from brokerage.platform.api import deliveries as deliveries_api
    from brokerage.platform.api import issues as issues_api
    from brokerage.platform.api import pushes as pushes_api
    from brokerage.platform.api import repositories as repositories_api
    from brokerage.platform.api import services as services_api
    from brokerage.platform.api import submissions as submissions_api
    from brokerage.platform.api import users as users_api
    from brokerage.platform.web import auth as web_auth
    from brokerage.platform.web import commits as web_commits
    from brokerage.platform.web import deliveries as web_deliveries
    from brokerage.platform.web import issues as web_issues
    from brokerage.platform.web import ops as web_ops
    from brokerage.platform.web import repos as web_repos
    from brokerage.platform.web import review as web_review
    from brokerage.platform.web import settings as web_settings
    from brokerage.platform.web import shortlinks
    from brokerage.platform.web import vendor as web_vendor

    for module in (
        users_api,
        repositories_api,
        services_api,
        brokers_api,
        pushes_api,
        deliveries_api,
        issues_api,
        shortlinks,
        web_auth,
        web_repos,
        web_settings,
        web_deliveries,
        web_issues,
        web_commits,
        web_ops,
        metrics,
        submissions_api,
        web_vendor,
        web_review,
    ):
        app.register_blueprint(module.bp)


def _error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": {"status": status, "message": message}}


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(exc: ApiError) -> Any:
        response = jsonify(_error_body(exc.status, exc.message))
        response.status_code = exc.status
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="Brokerage"'
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        response = jsonify(_error_body(status, exc.description or exc.name))
        response.status_code = status
        return response
