"""The acoustic half: a CNN (and a ridge baseline) that predicts a song's WMF factors from its audio."""
