"""Deliveries: their states and retry schedule (``states``), the RQ queue (``queue``),
one attempt run in the sandbox (``dispatch``), the sweeper that re-enqueues what Redis
lost (``sweeper``), the worker process (``worker``) and the functions RQ runs (``jobs``).
"""
