"""Synthetic Million-Song-Dataset-like world (``pmrs synth``): play counts, metadata and audio clips."""
