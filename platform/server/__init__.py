"""Serving the WSGI app: waitress with JSON answers for the errors it raises itself and
safe response headers (``wsgi``), and one access-log line per request (``access_log``)."""
