"""Serving: the bundle reader (``bundle.py``) and the recommendation logic over a bundle
(``recommend.py``). The gRPC layer that exposes them is the ``server`` package; see
docs/SERVING.md for the contract."""
