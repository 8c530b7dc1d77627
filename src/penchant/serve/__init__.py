"""The preference engine as an HTTP service."""
