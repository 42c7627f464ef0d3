"""Reinforcement-learning front end of the MAML toolkit (MAML-TRPO)."""
