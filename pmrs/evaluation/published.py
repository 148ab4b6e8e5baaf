"""Published figures that PMRS's protocol reports print beside PMRS's own, each with its source.

The one place these numbers are written. Keys are the protocols of ``pmrs evaluate --protocol``;
each figure names its paper and table, so a reader can check it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Published:
    """One model's published result on one protocol: ``metrics`` (name -> value) and its source."""

    model: str
    metrics: dict
    source: str


#: The Liang et al. (2018) MSD split: Recall@20, Recall@50, NDCG@100 (recall normalised by min(k, n)).
LIANG = (
    Published("EASE", {"recall@20": 0.333, "recall@50": 0.428, "ndcg@100": 0.389},
              "Steck, Embarrassingly Shallow Autoencoders for Sparse Data, WWW 2019, Table 1"),
    Published("EDLAE", {"ndcg@100": 0.392},
              "Steck, Autoencoders that don't overfit towards the Identity, NeurIPS 2020, Table 1 (full rank)"),
    Published("Mult-VAE", {"recall@20": 0.266, "recall@50": 0.364, "ndcg@100": 0.316},
              "Liang et al., Variational Autoencoders for Collaborative Filtering, WWW 2018, Table 2"),
    Published("WMF", {"recall@20": 0.211, "recall@50": 0.312, "ndcg@100": 0.257},
              "Liang et al., Variational Autoencoders for Collaborative Filtering, WWW 2018, Table 2"),
)

#: The MSD Challenge (Kaggle, 2012): mAP@500 on the 110,000 evaluation users' hidden half.
MSD_CHALLENGE = (
    Published("item-based asymmetric cosine (winner, Aiolli)", {"map@500": 0.17910},
              "Aiolli, Efficient Top-N Recommendation for Very Large Scale Binary Rated Datasets, "
              "RecSys 2013; Kaggle MSD Challenge final leaderboard"),
    Published("popularity (about)", {"map@500": 0.02},
              "the organisers' song-popularity baseline on the Kaggle leaderboard; McFee et al., "
              "The Million Song Dataset Challenge, WWW 2012 Companion"),
)

PUBLISHED = {"liang": LIANG, "msd-challenge": MSD_CHALLENGE}
