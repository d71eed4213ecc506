"""Push hooks: tell the platform about each push to a git or Mercurial repository.

``brokerage hook install`` (``main.install``) puts a ``post-receive`` hook into a git
repository and a ``changegroup`` hook into a Mercurial one; both run
``python -m brokerage.platform.hooks`` (``main.main``) with the interpreter that
installed them. One hook run:

1. reads the push from the repository (``hook_git`` / ``hook_hg``): the ref updates and
   the commits **new to the repository** (a new branch made of old commits, or a deleted
   branch, brings none),
2. builds the request body (``hook_push``, ``schemas/push.schema.json``) and writes it to
   the spool (``hook_spool``, ``<.git or .hg>/brokerage-spool/``) — so a killed hook loses
   nothing,
3. sends every spooled push, oldest first, to
   ``POST <url>/1.0/repositories/<owner>/<slug>/pushes`` with the push token
   (settings: ``hook_config``).

It never fails or holds up the push for long: each send has a short timeout; the first
transient failure (no connection, timeout, 408, 429, 5xx) stops the flush and leaves the
rest spooled for the next hook run or ``brokerage hook flush``. A permanent refusal
(any other 3xx/4xx) moves the push to ``brokerage-spool/rejected/`` and tells the pusher
why; ``flush --include-rejected`` sends those again once the cause is fixed. Every push
carries a ``push_id`` made once, so the platform stores a resent push once.
Errors: ``hook_errors``.
"""
