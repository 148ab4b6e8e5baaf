"""Serving: the bundle contract, the bundle reader and the recommendation logic over a bundle.
The public API over them is :class:`pmrs.Recommender`; the gRPC server (``pmrs-server``) exposes
that object, not this package. docs/SERVING.md is the contract."""
