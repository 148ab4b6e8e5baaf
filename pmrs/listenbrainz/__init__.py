"""A ListenBrainz-compatible HTTP API over a live recommender: players and client libraries that
speak ListenBrainz submit listens to PMRS and read recommendations back (``pmrs-listenbrainz``;
:mod:`.app` the routes, :mod:`.payload` the checks, :mod:`.record` listens into plays, :mod:`.tokens`
the users' tokens)."""
