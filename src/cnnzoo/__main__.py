"""`python -m cnnzoo ...` (and `torchrun -m cnnzoo ...`): the same as the `cnnzoo` command."""

import sys

from cnnzoo.cli.main import main

sys.exit(main())
