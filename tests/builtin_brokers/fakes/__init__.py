"""Local fakes of the services the built-in brokers call, on 127.0.0.1, each checking a
request the way the real API does (path, method, auth, content type, required fields) and
answering the way it does: :mod:`.classic` for the services of the classic brokers
(Twitter, FriendFeed, FogBugz, Basecamp, Lighthouse, CIA.vc, Superfeedr, Rietveld),
reached under ``<name>.test`` host names; :mod:`.modern` for Slack, Discord, Mattermost,
Teams, Pivotal Tracker, Geocommit, Jenkins and Bamboo, reached under their real host
names. :mod:`.wire` holds what both speak; ``tests/builtin_brokers/harness.py`` serves them."""
