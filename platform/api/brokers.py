"""``/1.0/brokers``: the catalogue of service types a repo admin may enable."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from brokerage.platform import catalogue
from brokerage.platform.api.auth import authenticate
from brokerage.platform.db import get_session

bp = Blueprint("brokers_api", __name__, url_prefix="/1.0/brokers")


@bp.get("", strict_slashes=False)
def list_brokers() -> Any:
    authenticate()
    return jsonify([catalogue.describe(v) for v in catalogue.offered(get_session())])
