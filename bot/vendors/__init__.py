"""Vendor clients behind one protocol."""
