"""Encoders for songs added live: their vectors from the bundle's own models."""

from __future__ import annotations

from .state import Encoder, no_encoder


def bundle_encoder(bundle) -> Encoder:
    """The encoder of ``bundle``'s models (none yet: added songs get no vectors)."""
    return no_encoder
