"""`python -m service.cli …` is `ekko …`."""

import sys

from service.cli import main

sys.exit(main())
