"""``python -m zhmask ...``: the same as the ``zhmask`` console script."""
from zhmask.cli import run

run()
