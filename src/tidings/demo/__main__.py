"""``python -m tidings.demo`` runs the demo (see ``tidings.demo.run``)."""

import sys

from tidings.demo.run import main

sys.exit(main())
