"""Blending two score matrices whose scales differ (WMF inner products, neighbour sums).

Each user's scores from each model are standardised over the songs (mean 0, standard deviation
1 per row), then mixed: ``share * z(wmf) + (1 - share) * z(neighbours)``. Share 1 is WMF alone,
0 the neighbourhood model alone (both rank as they would unblended).
"""

from __future__ import annotations

import numpy as np


def standardise_rows(scores: np.ndarray) -> np.ndarray:
    """``(n, n_songs)`` float32 scores standardised per row (a constant row becomes 0)."""
    s = np.asarray(scores, dtype=np.float32)
    mean = s.mean(axis=1, keepdims=True)
    std = s.std(axis=1, keepdims=True)
    return (s - mean) / np.where(std > 0, std, 1.0).astype(np.float32)


def blend_scores(wmf: np.ndarray, neighbours: np.ndarray, wmf_share: float) -> np.ndarray:
    """``wmf_share * z(wmf) + (1 - wmf_share) * z(neighbours)``, both ``(n, n_songs)``; float32."""
    if not 0.0 <= wmf_share <= 1.0:
        raise ValueError(f"wmf_share must be in [0, 1], got {wmf_share}")
    if wmf_share == 1.0:
        return np.asarray(wmf, dtype=np.float32)
    if wmf_share == 0.0:
        return np.asarray(neighbours, dtype=np.float32)
    return (np.float32(wmf_share) * standardise_rows(wmf)
            + np.float32(1.0 - wmf_share) * standardise_rows(neighbours))
