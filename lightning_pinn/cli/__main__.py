"""``python -m lightning_pinn.cli``: the ``lightning-pinn`` command."""

import sys

from lightning_pinn.cli import main

sys.exit(main())
