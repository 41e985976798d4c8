"""``python -m mask_grounding_dino.data.tools.validate ...``"""

import sys

from . import main

sys.exit(main())
