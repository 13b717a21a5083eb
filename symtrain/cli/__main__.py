"""``python -m symtrain.cli`` (the same as ``symtrain`` and ``python -m symtrain``)."""

import sys

from . import main

sys.exit(main())
