"""PMRS: a hybrid personalized music recommendation engine.

Collaborative side: weighted matrix factorization (WMF) of play counts.
Acoustic side: a CNN that predicts a song's WMF vector from its audio.
"""

__version__ = "0.1.0"
