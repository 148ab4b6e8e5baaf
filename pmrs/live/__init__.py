"""Live writes: plays and new songs that take effect without a rebuild (docs/LIVE.md)."""
