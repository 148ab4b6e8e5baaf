"""``indexer``: the command line over :mod:`pmrs.indexing`, which turns a work directory's latest
WMF run, CNN run and any other sources into a serving bundle (``bundles/<version>/``: one FAISS
index per source with measured recall, memory-mappable arrays, a catalog snapshot, default lists,
``manifest.json``) and switches ``bundles/CURRENT`` to it atomically. The format is
``pmrs.serving.contract`` (docs/DESIGN.md, docs/SERVING.md)."""
