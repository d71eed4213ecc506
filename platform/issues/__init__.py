"""The per-repository issue tracker the Issues broker acts on (``tracker``); its pure
rules (statuses, commands) are ``brokerage.core.issues``.
"""
