"""`python -m jaxmethods.serve --model PATH_OR_ID --port 8000`."""

import sys

from jaxmethods.serve.cli import main

sys.exit(main())
