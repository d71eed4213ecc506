"""The egress gateway: the only way out of a sandbox.

``gateway`` (channels, runs, the listener per sandbox), ``proxy`` (one request:
allowlist, address checks at connect time, caps, the request log), ``policy`` (what a
broker may reach), ``mailer`` (mail on a broker's behalf), ``relay`` (calls to the
platform API, forwarded by a function the platform passes in), ``errors``.
It knows no database, queue or web: the platform hands it what to call.
"""
