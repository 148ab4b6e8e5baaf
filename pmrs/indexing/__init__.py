"""Building serving bundles: ``build_bundle`` turns a work directory's latest WMF run, CNN run
any extra sources and the latest neighbourhood run into ``bundles/<version>/`` and makes it current (the ``indexer build``
command is a thin layer over it). The format is ``pmrs.serving.contract``."""

from .build import NeighboursInput, SourceInput, build_bundle
from .config import IndexerConfig

__all__ = ["IndexerConfig", "NeighboursInput", "SourceInput", "build_bundle"]
