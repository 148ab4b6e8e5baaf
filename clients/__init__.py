"""PMRS's command-line clients of ``pmrs-server`` (installed as ``pmrs_clients``).

- :mod:`pmrs_clients.cli`: ``pmrs-client``, the command line over the remote recommender
  :func:`pmrs.connect` (the Python client is the library's: ``pmrs.connect(target)``);
- :mod:`pmrs_clients.loadtest`: ``pmrs-loadtest`` and :func:`pmrs_clients.loadtest.run_loadtest`,
  a closed-loop load test reporting QPS, latency percentiles and errors by status code.
"""
