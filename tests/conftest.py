import os

# torch's OpenMP threads spin while they wait by default, which starves everything else on a
# 2-core machine; the CLI sets the same (pmrs.cli.main).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
