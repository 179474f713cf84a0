"""Companion: a desktop AI companion whose language model runs on your own GPU."""

__version__ = "0.1.0"
