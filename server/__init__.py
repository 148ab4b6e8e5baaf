"""``pmrs-server``: the gRPC service (``proto/pmrs/v1/recommender.proto``) over the bundle a work
directory's ``bundles/CURRENT`` names. ``servicer.py`` translates messages to
:class:`pmrs.Recommender` calls; ``main.py`` runs the server, watches ``CURRENT`` and swaps bundles
in without failing calls in flight (docs/SERVING.md)."""
