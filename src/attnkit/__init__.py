"""attnkit: attention-based sequence models from one lecture, as a small, hackable toolkit."""

__version__ = "0.1.0"

# Bumped whenever a saved model can no longer be read by this code.
FORMAT_VERSION = 1
