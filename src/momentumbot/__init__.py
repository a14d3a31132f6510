"""momentumbot: an intraday momentum-band trading bot for Interactive Brokers."""

__version__ = "0.1.0"
