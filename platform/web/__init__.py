"""The web pages (server-rendered HTML): one module per area, ``support`` for what every
page shares (the signed-in user, CSRF, errors, pagination). Pages use the platform's
domain modules, never the API's view modules.
"""
