"""PMRS indexer: ``indexer build`` turns the latest WMF and CNN runs into a serving bundle
(``bundles/<version>/``, FAISS indexes with measured recall, memory-mappable arrays, a catalog
snapshot, ``manifest.json``) and switches ``bundles/CURRENT`` to it atomically. The format is
specified in docs/SERVING.md; ``build.py`` writes it, ``pmrs.serving.bundle`` reads it."""
