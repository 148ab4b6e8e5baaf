"""The acoustic half: a CNN and a ridge baseline that predict a song's WMF factors from audio."""
