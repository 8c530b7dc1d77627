"""The preference engine as an HTTP service (the ``penchant[serve]`` extra)."""

from penchant.extras import require

require("serve", "the HTTP service")
