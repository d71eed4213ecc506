"""What a platform process holds once: config, database engine and sessions, the field
cipher, and (lazily) the Redis connection and delivery queue.

The web app keeps one in ``app.extensions["brokerage.runtime"]``; a worker builds its own
from the same config with :meth:`Runtime.from_config`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from brokerage.platform.db import make_engine
from brokerage.platform.encryption import FieldCipher

QUEUE_NAME = "deliveries"


@dataclass
class Runtime:
    config: dict[str, Any]
    engine: Engine
    sessions: sessionmaker[Session]
    cipher: FieldCipher
    _redis: Redis | None = field(default=None, repr=False)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Runtime:
        engine = make_engine(config["DATABASE_URL"], config.get("SQLITE_SYNCHRONOUS") or "FULL")
        return cls(
            config=config,
            engine=engine,
            sessions=sessionmaker(engine, expire_on_commit=False),
            cipher=FieldCipher.from_config(config),
        )

    @property
    def redis(self) -> Redis:
        if self._redis is None:
            self._redis = Redis.from_url(
                self.config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=5
            )
        return self._redis

    @property
    def queue(self) -> Queue:
        return Queue(QUEUE_NAME, connection=self.redis, serializer=JSONSerializer)

    def close(self) -> None:
        self.engine.dispose()
        if self._redis is not None:
            self._redis.close()


def current_runtime() -> Runtime:
    """The runtime of the current Flask app (``create_app`` gives every app one)."""
    found: Runtime = current_app.extensions["brokerage.runtime"]
    return found
