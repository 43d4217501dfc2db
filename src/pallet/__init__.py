"""pallet: a daemonless container engine with Docker's command line."""

__version__ = "0.1.0"
