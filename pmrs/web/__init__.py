"""``pmrs-web``: the interactive web page (listener's view, song pages, live writes, the map,
the lab) over a running ``pmrs-server``. An application, like ``pmrs_server`` and ``pmrs_clients``; it
sits under ``pmrs/`` because the top-level layout is fixed, and nothing in the library imports it.
"""
