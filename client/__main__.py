"""`python -m client` runs the `identity` command, for environments without the console script."""

import sys

from client.cli import main

sys.exit(main())
