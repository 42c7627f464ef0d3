"""Supervised front end of the MAML toolkit."""
