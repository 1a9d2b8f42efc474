"""Policies in their fixed order: safety -> dispatch -> override -> frequency -> price.

Each narrows the envelope it is given, never widens it (DESIGN point 2).
"""
