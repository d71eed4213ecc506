"""The REST API under ``/1.0``: one module per resource (blueprints), ``auth`` (who is
calling), ``support`` (helpers the views share) and ``broker_access`` (the API as a
broker reaches it through the gateway, with a per-delivery token).

Views parse and answer; the rules they apply live in the platform's domain modules
(``repositories``, ``services``, ``pushes``, ``deliveries``, ``issues``), which the web
pages use too.
"""
