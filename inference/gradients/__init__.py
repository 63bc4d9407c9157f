"""Gradients of expectations over Gillespie simulations with respect to reaction rates."""

from __future__ import annotations
