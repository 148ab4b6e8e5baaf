"""PMRS server: not built yet; see the serving issue (docs/ARCHITECTURE.md, 'Status')."""
