"""parareason: adaptive parallel-reasoning decoding runtime."""
__version__ = "0.1.0"
