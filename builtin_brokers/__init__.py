"""The built-in brokers: one folder per broker type (``manifest.json``, code, README,
``fixtures/``). This package holds broker folders only and imports nothing of ours; the
submissions component reads it as data (``brokerage.submissions.builtins``).
"""
