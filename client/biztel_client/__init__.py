"""biztel-client: the customer side of the recording gateway, over its public API only."""

__version__ = "1.0.0"
